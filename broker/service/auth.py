"""Authenticating agency systems by their RFC 9421 request signatures.

Invariant: every failure (unknown, revoked or expired key; a key that is not an agency's; bad
signature; missing component; digest mismatch; stale ``created``; replayed nonce) raises the same
``AuthenticationFailed``: the caller learns nothing about which check failed. The reason is kept
in ``detail`` for the audit log.

A request carries exactly one signature label (``broker.crypto.httpsig``): the one nonce recorded
per request is then the nonce of everything that authenticated it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from broker.crypto.httpsig import (
    HttpRequestView,
    SignatureInvalid,
    VerifiedSignature,
    digest_matches,
    verify_request,
)
from broker.domain.directory import Directory, KeyType
from broker.errors import AuthenticationFailed

WITH_BODY = [
    ("@method", "@target-uri", "content-type", "content-digest"),
    ("@method", "@authority", "@path", "content-type", "content-digest"),
]
WITHOUT_BODY = [("@method", "@target-uri"), ("@method", "@authority", "@path")]


@dataclass(frozen=True, slots=True)
class Agency:
    organisation: str
    signature: VerifiedSignature

    def nonce_expiry(self, skew_seconds: int) -> datetime:
        """Until when this nonce must be remembered: past that, ``created`` is refused anyway."""
        created = datetime.fromtimestamp(self.signature.created, tz=UTC)
        return created + timedelta(seconds=2 * skew_seconds)


def authenticate_agency(
    directory: Directory,
    *,
    method: str,
    target_uri: str,
    headers: Mapping[str, str],
    body: bytes | None,
    now: datetime,
    max_skew: int,
) -> Agency:
    """The agency (organisation) that signed this request, or ``AuthenticationFailed``."""
    view = HttpRequestView(method, target_uri, headers)

    def lookup(keyid: str) -> bytes | None:
        key = directory.keys.get(keyid)
        if key is None or key.type is not KeyType.ED25519 or not key.usable_at(now):
            return None
        return key.public if key.owner in directory.organisations else None

    try:
        verified = verify_request(
            view,
            lookup_key=lookup,
            now=int(now.timestamp()),
            max_skew=max_skew,
            required=WITH_BODY if body is not None else WITHOUT_BODY,
        )
    except SignatureInvalid as e:
        raise AuthenticationFailed(detail=e.reason) from e
    if body is not None and not digest_matches(headers.get("content-digest", ""), body):
        raise AuthenticationFailed(detail="content-digest does not match the body")
    return Agency(directory.keys[verified.keyid].owner, verified)
