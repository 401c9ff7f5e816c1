"""Who is calling: a peer broker, by the RFC 9421 signature of the key its peer file pins.

Every federation endpoint asks this first. A request is a peer's only when it is signed by a
pinned broker key over ``COMPONENTS`` (method, target URI, Content-Digest, Content-Type,
Idempotency-Key) within the clock skew, and its body matches the digest. Under mutual TLS
(``server.client_ca``) the connection's verified client certificate must also be one the
signing peer's file pins (``tls_client_sha256``; attacker: a peer broker holding another peer's
stolen broker key but only its own certificate). Any failure — an
unknown key, a bad signature, an altered body, a stale request — is one ``AuthenticationFailed``
(one 401): the caller cannot tell which.
"""

from __future__ import annotations

from datetime import datetime

from broker.audit.events import AuditEvent
from broker.crypto.httpsig import (
    HttpRequestView,
    SignatureInvalid,
    VerifiedSignature,
    digest_matches,
    verify_request,
)
from broker.crypto.keys import fingerprint
from broker.errors import AuthenticationFailed, LiaisonError
from broker.federation.agreements import Peer
from broker.federation.forward import COMPONENTS
from broker.service.intake import IncomingRequest
from broker.service.refusals import Refusals
from broker.state import View


def authenticate_peer(
    view: View, request: IncomingRequest, now: datetime, max_skew: int
) -> tuple[Peer, VerifiedSignature]:
    """The declared peer that signed ``request``, and its verified signature."""
    peers = {fingerprint(p.broker_key): p for p in view.policies.peers.values()}
    try:
        signature = verify_request(
            HttpRequestView(request.method, request.target_uri, request.headers),
            lookup_key=lambda keyid: peers[keyid].broker_key if keyid in peers else None,
            now=int(now.timestamp()),
            max_skew=max_skew,
            required=[COMPONENTS],
        )
    except (SignatureInvalid, ValueError) as e:
        raise AuthenticationFailed(detail=str(e)) from e
    if not digest_matches(request.headers.get("content-digest", ""), request.body):
        raise AuthenticationFailed(detail="content digest")
    peer = peers[signature.keyid]
    if not peer.holds_certificate(request.client_certificate):
        raise AuthenticationFailed(detail="client certificate not pinned for the peer")
    return peer, signature


async def authenticated_peer(
    view: View, request: IncomingRequest, now: datetime, max_skew: int, refusals: Refusals
) -> tuple[Peer, VerifiedSignature]:
    """``authenticate_peer``, with its refusal counted and audited (``federation.refused``,
    actor ``unknown``: whoever it was, it proved no peer's key) before the one 401."""
    try:
        return authenticate_peer(view, request, now, max_skew)
    except AuthenticationFailed as e:
        event = refused_event(now, "unknown", "federation.refused", "federation", e, request)
        await refusals.refused(event, request.source, e)
        raise


def refused_event(
    now: datetime,
    actor: str,
    action: str,
    obj: str,
    error: LiaisonError,
    request: IncomingRequest,
) -> AuditEvent:
    """A refusal by a peer endpoint, for the audit log; the caller sees only its code."""
    return AuditEvent(
        now,
        actor,
        action,
        obj,
        outcome="refused",
        decision="deny",
        reason=error.code,
        details={"why": getattr(error, "reason", None) or error.message},
        request=request.request_id,
    )
