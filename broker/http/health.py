"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from broker.http.keys import LISTENER, STATE
from broker.store.engine import ping


async def healthz(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and a valid policy set and directory are loaded."""
    state = request.app[STATE]
    database = await ping(state.engine)
    checks = {
        "database": "ok" if database else "unreachable",
        "policies": "loaded" if state.loaded else "not loaded",
    }
    listener = request.app.get(LISTENER)
    if listener is not None:  # several processes: live push needs the NOTIFY listener
        checks["listener"] = "listening" if listener.connected.is_set() else "reconnecting"
    body: dict[str, object] = {
        "status": "ready" if database and state.loaded else "not ready",
        "checks": checks,
    }
    if state.loaded:
        view = state.view
        body["policy_hash"] = view.policies.hash
        body["directory_revision"] = view.directory_revision
    return web.json_response(body, status=200 if body["status"] == "ready" else 503)
