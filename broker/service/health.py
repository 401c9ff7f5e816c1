"""What the readiness probe and the metrics scrape read: the store's answer and its counts.

The handlers in ``broker.http.health`` and ``broker.http.metrics`` only shape these into HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from broker import metrics
from broker.service.startup import Startup
from broker.state import BrokerState
from broker.store.engine import ping, write_refusal
from broker.store.health import health_of
from broker.store.stats_repo import counts


class Listening(Protocol):
    """The NOTIFY listener as the probe and the composition root see it (``store.listener``)."""

    connected: asyncio.Event

    async def stop(self) -> None: ...


async def readiness(
    state: BrokerState, listener: Listening | None, startup: Startup, min_free_bytes: int
) -> dict[str, object]:
    """Ready when the broker has started, the database answers and can take a write, and a
    valid policy set and directory are loaded. Not ready: ``reasons`` says why, one line each."""
    database = await ping(state.engine)
    refusal = await write_refusal(state.engine, min_free_bytes) if database else None
    checks = {
        "database": ("ok" if refusal is None else "cannot write") if database else "unreachable",
        "policies": "loaded" if state.loaded else "not loaded",
    }
    if listener is not None and startup.ready:  # several processes: push needs the listener
        checks["listener"] = "listening" if listener.connected.is_set() else "reconnecting"
    reasons = _reasons(state, startup, database, refusal)
    _export(state)
    body: dict[str, object] = {"status": "not ready" if reasons else "ready", "checks": checks}
    if reasons:
        body["reasons"] = reasons
    if state.loaded:
        view = state.view
        body["policy_hash"] = view.policies.hash
        body["directory_revision"] = view.directory_revision
    return body


def _reasons(
    state: BrokerState, startup: Startup, database: bool, refusal: str | None
) -> list[str]:
    reasons = []
    if not startup.ready:
        reasons.append(f"starting: {startup.waiting_for}")
    if not database:
        reasons.append(f"database unreachable: {health_of(state.engine).cause or 'no answer'}")
    if refusal is not None:
        reasons.append(refusal)
    if not state.loaded:
        reasons.append("policies and directory not loaded")
    return reasons


def _export(state: BrokerState) -> None:
    """The store's last answer as the ``liaison_store_state`` metric."""
    metrics.STORE_STATE.state(health_of(state.engine).cause or "available")


def store_state(state: BrokerState) -> str:
    """``available`` or the cause of the outage, as the store last answered (no query)."""
    _export(state)
    return health_of(state.engine).cause or "available"


async def store_counts(
    state: BrokerState,
) -> tuple[dict[str, int], dict[tuple[str, str], int], int]:
    """Deliveries by state, outbox messages by (kind, state), and the audit log's size."""
    return await counts(state.engine)
