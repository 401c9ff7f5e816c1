"""Peer brokers' endpoints.

``POST /v1/federation/notices``: a notice forwarded by a peer broker (``federation/receive``).
201 with the notice this broker made of it; 200 with the same body when the peer sends it again
(``Idempotent-Replayed: true``); one 401 for any signature failure, 403 with the reason when the
origin, the bytes or the agreement refuse it.

``POST /v1/federation/status``: a peer's per-role report on a notice forwarded to it, with its
recipients' replies sealed for the agency (``federation/reports_in``, ``replies``). 200; one
401 for any signature failure or a replay; one 403 when the notice was not forwarded to that
peer."""

from __future__ import annotations

from aiohttp import web

from broker.errors import UnsupportedMediaType
from broker.http.json_body import json_response
from broker.http.keys import CLOCK, FEDERATION, FEDERATION_STATUS, SETTINGS
from broker.http.middleware import REQUEST_ID
from broker.http.notices import header_map, source, target_uri
from broker.http.tls import require_client_certificate
from broker.service.intake import IncomingRequest


async def post_notice(request: web.Request) -> web.Response:
    incoming = await _incoming(request, "a forwarded notice")
    accepted = await request.app[FEDERATION].receive(incoming, request.app[CLOCK].now())
    response = json_response(accepted.body, status=200 if accepted.replayed else 201)
    if accepted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def post_status(request: web.Request) -> web.Response:
    incoming = await _incoming(request, "a status report")
    body = await request.app[FEDERATION_STATUS].receive(incoming, request.app[CLOCK].now())
    return json_response(body)


async def _incoming(request: web.Request, what: str) -> IncomingRequest:
    """A peer's request as the federation services read it (they authenticate the peer, and
    bind the mutual-TLS certificate, required under ``server.client_ca``, to it)."""
    certificate = require_client_certificate(request, request.app[SETTINGS])
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"{what} is application/json")
    return IncomingRequest(
        request.method,
        target_uri(request),
        header_map(request),
        await request.read(),
        request[REQUEST_ID],
        source=source(request),
        client_certificate=certificate,
    )
