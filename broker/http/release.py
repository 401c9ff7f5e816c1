"""Two-person release endpoints: a second officer approves or refuses a held notice."""

from __future__ import annotations

from aiohttp import web

from broker.http.json_body import json_response
from broker.http.keys import CLOCK, RELEASE, SETTINGS
from broker.http.middleware import REQUEST_ID
from broker.http.notices import header_map, target_uri
from broker.http.tls import require_client_certificate
from broker.service.release import Decision


async def _decide(request: web.Request, *, approve: bool) -> web.Response:
    certificate = require_client_certificate(request, request.app[SETTINGS])
    decision = Decision(
        request.method,
        target_uri(request),
        header_map(request),
        await request.read(),
        client_certificate=certificate,
        request_id=request[REQUEST_ID],
    )
    body = await request.app[RELEASE].decide(
        request.match_info["id"], decision, approve=approve, now=request.app[CLOCK].now()
    )
    return json_response(body)


async def post_approve(request: web.Request) -> web.Response:
    """POST /v1/notices/{id}/approve: a second officer of the sender releases the notice."""
    return await _decide(request, approve=True)


async def post_refuse(request: web.Request) -> web.Response:
    """POST /v1/notices/{id}/refuse: a second officer refuses it; it is never routed."""
    return await _decide(request, approve=False)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/v1/notices/{id}/approve", post_approve)
    router.add_post("/v1/notices/{id}/refuse", post_refuse)
