"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from broker.http.keys import LISTENER, STATE
from broker.service.health import readiness


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and a valid policy set and directory are loaded."""
    body = await readiness(request.app[STATE], request.app.get(LISTENER))
    return web.json_response(body, status=200 if body["status"] == "ready" else 503)
