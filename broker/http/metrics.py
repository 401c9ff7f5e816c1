"""GET /metrics: Prometheus text format, on a listener of its own, never the public one.

Invariants:
- The public listener has no /metrics route (404, problem+json like any unknown path); the
  shipped Caddyfile does not forward it either.
- The metrics listener binds ``metrics.host:metrics.port`` (loopback by default) and exists only
  when ``metrics.port`` is set. With ``metrics.token`` (by reference), a scrape without
  ``Authorization: Bearer <token>`` gets 401; the comparison takes constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker import metrics
from broker.config import Settings, resolve_secret
from broker.errors import AuthenticationFailed, StoreError
from broker.http.keys import RECIPIENTS, STATE
from broker.http.middleware import request_context
from broker.logs import get_logger
from broker.service.health import store_counts, store_state

log = get_logger("liaison.metrics")
BROKER = web.AppKey("broker", web.Application)
TOKEN = web.AppKey("metrics_token", bytes)


async def serve(request: web.Request) -> web.Response:
    token = request.app[TOKEN]
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip().encode()
    if token and not hmac.compare_digest(given, token):
        raise AuthenticationFailed(detail="metrics scrape without the metrics token")
    broker = request.app[BROKER]
    try:  # during an outage the scrape still answers: workers, store state, requests
        states, messages, audit_size = await store_counts(broker[STATE])
    except StoreError:
        pass
    else:
        for state in ("pending", "delivered", "read", "acknowledged", "escalated"):
            metrics.DELIVERIES.labels(state).set(states.get(state, 0))
        for (kind, state), count in messages.items():
            metrics.OUTBOX.labels(kind, state).set(count)
        metrics.AUDIT_EVENTS.set(audit_size)
    store_state(broker[STATE])
    metrics.LIVE_CONNECTIONS.set(broker[RECIPIENTS].hub.connections)
    authorizer = broker[STATE].view.authorizer
    metrics.POLICY_DECISIONS.labels("hit").set(authorizer.cache_hits)
    metrics.POLICY_DECISIONS.labels("miss").set(authorizer.cache_misses)
    metrics.PUSH_DECISIONS.labels("hit").set(authorizer.read_hits)
    metrics.PUSH_DECISIONS.labels("miss").set(authorizer.read_misses)
    response = web.Response(body=generate_latest(metrics.REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def metrics_app(broker: web.Application, token: bytes) -> web.Application:
    app = web.Application(middlewares=[request_context])
    app[BROKER], app[TOKEN] = broker, token
    app.router.add_get("/metrics", serve)
    return app


def listener(
    settings: Settings, environ: Mapping[str, str]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for the broker app that runs the metrics listener beside it."""
    config = settings.metrics
    token = resolve_secret(config.token, settings, environ).strip() if config.token else b""

    async def run(broker: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(metrics_app(broker, token), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, config.host, config.port).start()
        log.info("metrics_listening", host=config.host, port=config.port, token=bool(token))
        yield
        await runner.cleanup()

    return run
