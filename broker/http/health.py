"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from broker.http.keys import LISTENER, SETTINGS, STARTUP, STATE
from broker.service.health import readiness


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the broker has started, the database answers and takes writes, and a valid
    policy set and directory are loaded; otherwise 503 with the reasons."""
    app = request.app
    body = await readiness(
        app[STATE], app.get(LISTENER), app[STARTUP], app[SETTINGS].database.min_free_bytes
    )
    return web.json_response(body, status=200 if body["status"] == "ready" else 503)
