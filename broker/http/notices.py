"""Agency endpoints: post a notice, read its status. Thin: parse, call the service, answer."""

from __future__ import annotations

from aiohttp import web

from broker.errors import LiaisonError, NoticeInvalid, UnsupportedMediaType
from broker.http.json_body import json_response
from broker.http.keys import CLOCK, INTAKE, SETTINGS, STATE
from broker.http.language import in_language, reader_language
from broker.http.middleware import REQUEST_ID
from broker.http.tls import require_client_certificate
from broker.input import check_integer
from broker.metrics import NOTICES_ACCEPTED, NOTICES_REFUSED
from broker.policy.payload import Violation
from broker.service.intake import IncomingRequest
from broker.service.notices import QUERY_INVALID
from broker.service.sent import PAGE_MAX, list_sent
from broker.service.status import read_status


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
    if request.content_type not in ("application/json", "application/cap+xml"):
        NOTICES_REFUSED.labels(UnsupportedMediaType.code).inc()
        raise UnsupportedMediaType(
            "notices are posted as application/json, or as a CAP 1.2 alert (application/cap+xml)"
        )
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
    response = json_response(accepted.body, status=201)
    response.headers["Location"] = accepted.body["status_url"]
    if accepted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def get_status(request: web.Request) -> web.Response:
    certificate = require_client_certificate(request, request.app[SETTINGS])
    state = request.app[STATE]
    body = await read_status(
        state.engine,
        state.view,
        request.match_info["id"],
        method=request.method,
        target_uri=target_uri(request),
        headers=header_map(request),
        client_certificate=certificate,
        now=request.app[CLOCK].now(),
        max_skew=request.app[SETTINGS].limits.clock_skew_seconds,
        request_id=request[REQUEST_ID],
        language=reader_language(request),
    )
    return in_language(json_response(body), reader_language(request))


async def get_sent(request: web.Request) -> web.Response:
    """GET /v1/notices: the agency's own notices, newest first, each role's state."""
    certificate = require_client_certificate(request, request.app[SETTINGS])
    state = request.app[STATE]
    q = request.query
    try:
        limit = check_integer(int(q.get("limit", "20")), "/limit")
    except ValueError as e:
        raise NoticeInvalid([Violation("/limit", "must be a whole number")], QUERY_INVALID) from e
    if not 1 <= limit <= PAGE_MAX:  # as documented: refused, not quietly clamped
        raise NoticeInvalid([Violation("/limit", f"must be from 1 to {PAGE_MAX}")], QUERY_INVALID)
    body = await list_sent(
        state.engine,
        state.view,
        method=request.method,
        target_uri=target_uri(request),
        headers=header_map(request),
        client_certificate=certificate,
        now=request.app[CLOCK].now(),
        max_skew=request.app[SETTINGS].limits.clock_skew_seconds,
        request_id=request[REQUEST_ID],
        cursor=q.get("cursor"),
        limit=limit,
        language=reader_language(request),
    )
    return in_language(json_response(body), reader_language(request))
