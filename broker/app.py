"""Composition root: the one place that picks concrete classes and wires the broker together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from aiohttp import web

from broker.clock import Clock, SystemClock
from broker.config import Settings, resolve_secret, resolved_database_url
from broker.crypto.keys import load_private_key
from broker.errors import StoreError
from broker.http import health, notices, openapi
from broker.http.keys import CLOCK, INTAKE, SETTINGS, STATE
from broker.http.middleware import request_context
from broker.logs import get_logger
from broker.service.intake import Intake
from broker.state import BrokerState
from broker.store import Database
from broker.store.engine import create_engine, migrate
from broker.store.notices_repo import purge_nonces

log = get_logger("liaison.app")
DIRECTORY_POLL_SECONDS = 5.0
NONCE_PURGE_SECONDS = 60.0
# PyNaCl releases the GIL: a small pool lets wraps and encryption use both cores.
CRYPTO_THREADS = 2


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
    clock = clock or SystemClock()
    state = BrokerState(engine, settings.policies_dir, settings.limits)
    escrow = load_private_key(
        resolve_secret(settings.keys.escrow_key, settings, environ),
        expected="x25519",
        source="keys.escrow_key",
    )
    pool = ThreadPoolExecutor(CRYPTO_THREADS, thread_name_prefix="liaison-crypto")
    app[SETTINGS], app[CLOCK], app[STATE] = settings, clock, state
    app[INTAKE] = Intake(
        state,
        escrow_public=escrow.public_raw,
        escrow_key_id=escrow.key_id("broker"),
        limits=settings.limits,
        pool=pool,
    )

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await migrate(state.engine)
        view = await state.load()
        log.info(
            "broker_started",
            policy_hash=view.policies.hash,
            directory_revision=view.directory_revision,
            channels=len(view.policies.channels),
        )
        workers = [
            asyncio.create_task(_poll_directory(state), name="directory-poller"),
            asyncio.create_task(_purge_nonces(state, clock), name="nonce-purger"),
        ]
        yield
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pool.shutdown(wait=True)
        if own_engine:
            await state.engine.dispose()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/openapi.json", openapi.serve)
    app.router.add_post("/v1/notices", notices.post_notice)
    app.router.add_get("/v1/notices/{id}/status", notices.get_status)
    return app


async def _poll_directory(state: BrokerState) -> None:
    """Pick up directory revisions applied from the CLI while the broker runs."""
    while True:
        await asyncio.sleep(DIRECTORY_POLL_SECONDS)
        try:
            await state.refresh_directory()
        except StoreError:
            log.warning("directory_refresh_failed")


async def _purge_nonces(state: BrokerState, clock: Clock) -> None:
    """Forget request nonces that can no longer be replayed."""
    while True:
        await asyncio.sleep(NONCE_PURGE_SECONDS)
        try:
            await purge_nonces(state.engine, clock.now() - timedelta(seconds=1))
        except (StoreError, OSError):
            log.warning("nonce_purge_failed")
