"""Agency endpoints: post a notice, read its status. Thin: parse, call the service, answer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from broker.audit.events import AuditEvent
from broker.errors import AuthenticationFailed, LiaisonError, NotFound, UnsupportedMediaType
from broker.http.keys import CLOCK, INTAKE, SETTINGS, STATE
from broker.http.middleware import REQUEST_ID
from broker.http.tls import require_client_certificate
from broker.metrics import NOTICES_ACCEPTED, NOTICES_REFUSED
from broker.service.auth import authenticate_agency
from broker.service.intake import IncomingRequest
from broker.service.status import notice_status
from broker.store import notices_repo as repo


def target_uri(request: web.Request) -> str:
    """The URI a signature must cover: the broker's public URL (configured, or derived from
    server.host/port) and the request's path. Never the request's Host: a request signed for
    another authority does not verify here (attacker: whoever relays a signed request)."""
    return request.app[SETTINGS].public_url + request.path_qs


def source(request: web.Request) -> str:
    """Where a request came from, as far as the broker can tell: for counting refusals."""
    return request.remote or "-"


def header_map(request: web.Request) -> dict[str, str]:
    return {
        name.lower(): ", ".join(request.headers.getall(name))
        for name in set(request.headers.keys())
    }


async def post_notice(request: web.Request) -> web.Response:
    certificate = require_client_certificate(request, request.app[SETTINGS])
    if request.content_type != "application/json":
        NOTICES_REFUSED.labels(UnsupportedMediaType.code).inc()
        raise UnsupportedMediaType("notices are posted as application/json")
    body = await request.read()  # bounded by client_max_size (limits.max_body_bytes): 413 beyond
    incoming = IncomingRequest(
        request.method,
        target_uri(request),
        header_map(request),
        body,
        request[REQUEST_ID],
        source=source(request),
        client_certificate=certificate,
    )
    try:
        accepted = await request.app[INTAKE].submit(incoming, request.app[CLOCK].now())
    except LiaisonError as e:
        NOTICES_REFUSED.labels(e.code).inc()
        raise
    if not accepted.replayed:
        NOTICES_ACCEPTED.labels(str(accepted.body.get("channel", "unknown"))).inc()
    response = web.json_response(accepted.body, status=201)
    response.headers["Location"] = accepted.body["status_url"]
    if accepted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def get_status(request: web.Request) -> web.Response:
    certificate = require_client_certificate(request, request.app[SETTINGS])
    state, now = request.app[STATE], request.app[CLOCK].now()
    view = state.view
    skew = request.app[SETTINGS].limits.clock_skew_seconds
    agency = authenticate_agency(
        view.directory,
        method=request.method,
        target_uri=target_uri(request),
        headers=header_map(request),
        body=None,
        now=now,
        max_skew=skew,
        client_certificate=certificate,
    )
    notice_id = request.match_info["id"]
    event = AuditEvent(
        at=now,
        actor=f"agency:{agency.organisation}",
        action="notice.status_read",
        object=f"notice:{notice_id[:40]}",
        request=request[REQUEST_ID],
    )
    try:
        body: dict[str, Any] | None = await notice_status(state.engine, view, agency, notice_id)
    except NotFound:
        body = None
        event = replace(
            event, action="notice.status_refused", outcome="refused", reason="not_found"
        )
    try:
        await repo.record_nonce(
            state.engine,
            agency.signature.keyid,
            agency.signature.nonce,
            agency.nonce_expiry(skew),
            [event],
        )
    except repo.NonceReplayed as e:
        raise AuthenticationFailed(detail="nonce replayed") from e
    if body is None:
        raise NotFound("no such notice")
    return web.json_response(body)
