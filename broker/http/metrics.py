"""GET /metrics: Prometheus text format. Expose it to the monitoring network only."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker import metrics
from broker.http.keys import RECIPIENTS, STATE
from broker.store.stats_repo import counts


async def serve(request: web.Request) -> web.Response:
    states, messages, audit_size = await counts(request.app[STATE].engine)
    for state in ("pending", "delivered", "read", "acknowledged", "escalated"):
        metrics.DELIVERIES.labels(state).set(states.get(state, 0))
    for (kind, state), count in messages.items():
        metrics.OUTBOX.labels(kind, state).set(count)
    metrics.AUDIT_EVENTS.set(audit_size)
    metrics.LIVE_CONNECTIONS.set(request.app[RECIPIENTS].hub.connections)
    response = web.Response(body=generate_latest(metrics.REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
