"""What the readiness probe and the metrics scrape read: the store's answer and its counts.

The handlers in ``broker.http.health`` and ``broker.http.metrics`` only shape these into HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from broker.state import BrokerState
from broker.store.engine import ping
from broker.store.stats_repo import counts


class Listening(Protocol):
    """The NOTIFY listener as the probe and the composition root see it (``store.listener``)."""

    connected: asyncio.Event

    async def stop(self) -> None: ...


async def readiness(state: BrokerState, listener: Listening | None) -> dict[str, object]:
    """Ready when the database answers and a valid policy set and directory are loaded."""
    database = await ping(state.engine)
    checks = {
        "database": "ok" if database else "unreachable",
        "policies": "loaded" if state.loaded else "not loaded",
    }
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
    return body


async def store_counts(
    state: BrokerState,
) -> tuple[dict[str, int], dict[tuple[str, str], int], int]:
    """Deliveries by state, outbox messages by (kind, state), and the audit log's size."""
    return await counts(state.engine)
