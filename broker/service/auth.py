"""Authenticating agency systems by their RFC 9421 request signatures.

Invariant: every failure (unknown, revoked or expired key; a key that is not an agency's; bad
signature; missing component; digest mismatch; stale ``created``; replayed nonce) raises the same
``AuthenticationFailed``: the caller learns nothing about which check failed. The reason is kept
in ``detail`` for the audit log.

Under mutual TLS the connection's certificate is bound to the agency: the signing key's
organisation must list the certificate's SHA-256 fingerprint among its ``tls-client-sha256``
keys (active, in its period). Another agency's certificate, or an organisation that lists none,
is the same ``AuthenticationFailed`` (attacker: an agency system holding another agency's
stolen signing key but only its own certificate).

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
    client_certificate: bytes | None = None,
) -> Agency:
    """The agency (organisation) that signed this request, or ``AuthenticationFailed``.

    ``client_certificate`` is the SHA-256 of the verified mTLS certificate (None without mTLS)."""
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
    owner = directory.keys[verified.keyid].owner
    if client_certificate is not None and not certificate_bound(
        directory, owner, client_certificate, now
    ):
        raise AuthenticationFailed(detail="the client certificate is not bound to this agency")
    return Agency(owner, verified)


def certificate_bound(
    directory: Directory, organisation: str, fingerprint: bytes, now: datetime
) -> bool:
    """Whether the organisation lists this certificate fingerprint as a usable key."""
    return any(
        key.owner == organisation
        and key.type is KeyType.TLS_CLIENT_SHA256
        and key.public == fingerprint
        and key.usable_at(now)
        for key in directory.keys.values()
    )
