"""Composition root: the one place that picks concrete classes and wires the broker together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from broker.clock import Clock, SystemClock
from broker.config import Settings, resolved_database_url
from broker.errors import StoreError
from broker.http import health
from broker.http.keys import CLOCK, SETTINGS, STATE
from broker.http.middleware import request_context
from broker.logs import get_logger
from broker.state import BrokerState
from broker.store import Database
from broker.store.engine import create_engine, migrate

log = get_logger("liaison.app")
DIRECTORY_POLL_SECONDS = 5.0


def create_app(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    engine: Database | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """Build the aiohttp application. Start-up migrates the schema and loads policies and
    directory; an invalid policy set stops start-up with ``PolicyFileError``."""
    app = web.Application(
        middlewares=[request_context], client_max_size=settings.limits.max_body_bytes
    )
    own_engine = engine is None
    engine = engine or create_engine(
        resolved_database_url(settings, environ), pool_size=settings.database.pool_size
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[STATE] = BrokerState(engine, settings.policies_dir, settings.limits)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        state = app[STATE]
        await migrate(state.engine)
        view = await state.load()
        log.info(
            "broker_started",
            policy_hash=view.policies.hash,
            directory_revision=view.directory_revision,
            channels=len(view.policies.channels),
        )
        poller = asyncio.create_task(_poll_directory(state), name="directory-poller")
        yield
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        if own_engine:
            await state.engine.dispose()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    return app


async def _poll_directory(state: BrokerState) -> None:
    """Pick up directory revisions applied from the CLI while the broker runs."""
    while True:
        await asyncio.sleep(DIRECTORY_POLL_SECONDS)
        try:
            await state.refresh_directory()
        except StoreError:
            log.warning("directory_refresh_failed")
