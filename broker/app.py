"""Composition root: the one place that picks concrete classes and wires the broker together."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from adapters.delivery.email import SmtpMailer
from adapters.delivery.jwks import fetch_jwks
from adapters.delivery.peer import PeerDriver
from adapters.delivery.webhook import WebhookDriver
from adapters.delivery.witness import WitnessDriver
from broker import metrics as metrics_registry
from broker import web as web_inbox
from broker.clock import Clock, SystemClock
from broker.config import Settings, resolved_database_url
from broker.crypto import purpose_keys
from broker.crypto.keys import KeyPair, ed25519_signer
from broker.domain.delivery import WebhookResult
from broker.errors import ConfigError, LiaisonError, StoreError, StoreUnavailable
from broker.federation.agreements import witness_name
from broker.federation.cosigning import CheckpointSubmitter
from broker.federation.forward import Forwarding, PeerForwarder
from broker.federation.receive import Receiver
from broker.federation.reporter import StatusReporter, is_status
from broker.federation.reports_in import ReportIntake
from broker.federation.witnessing import PeerWitness
from broker.http import (
    audit,
    enrol,
    federation,
    health,
    metrics,
    notices,
    oauth,
    openapi,
    published_keys,
    recipients,
    release,
    trust,
    witness,
)
from broker.http.keys import (
    AUDIT,
    CLOCK,
    COSIGNING,
    ENROLMENT,
    ESCALATION,
    FEDERATION,
    FEDERATION_STATUS,
    INTAKE,
    LISTENER,
    OUTBOX,
    PURPOSE_KEYS,
    RECIPIENTS,
    REFUSALS,
    REKEY,
    RELEASE,
    REPORTER,
    SETTINGS,
    SHREDDER,
    STARTUP,
    STATE,
    TOKENS,
    WITNESS,
)
from broker.http.middleware import request_context
from broker.http.tls import peer_client_context
from broker.logs import get_logger
from broker.service.audit import AuditService
from broker.service.backoff import retry_delay
from broker.service.commit_feed import CommitFeed
from broker.service.custody import load_escrow_key
from broker.service.enrolment import Enrolment
from broker.service.escalation import EscalationWorker
from broker.service.intake import CrossBorder, Intake
from broker.service.outbox import Outbox
from broker.service.push import Hub
from broker.service.recipients import Recipients
from broker.service.refusals import Refusals
from broker.service.rekey import Rekeyer
from broker.service.release import Release
from broker.service.retention import Shredder
from broker.service.startup import Startup
from broker.service.tokens import TokenKeys, TokenService
from broker.service.workers import Worker
from broker.state import BrokerState
from broker.store import Database
from broker.store.commit_watch import CommitWatch, sqlite_file
from broker.store.engine import create_engine, migrate
from broker.store.intake_repo import purge_nonces
from broker.store.listener import Listener
from broker.store.outbox_repo import OutboxItem
from broker.trust.files import TRUST_DIR

log = get_logger("liaison.app")
DIRECTORY_POLL_SECONDS = 5.0
NONCE_PURGE_SECONDS = 60.0
OUTBOX_SECONDS = 1.0
RELEASE_SECONDS = 30.0  # held notices past their deadline are refused by timeout
REPORT_SWEEP_SECONDS = 2.0  # how late a foreign acknowledgement may be queued for its sender
JWKS_REFRESH_SECONDS = 3600.0
START_RETRY_CAP_SECONDS = 5.0  # a broker waiting for its store tries at least this often
# SQLite with several workers: how often each looks for another's commit (the push latency added).
FEED_POLL_SECONDS = 0.02
# PyNaCl releases the GIL: a small pool lets wraps and encryption use both cores.
CRYPTO_THREADS = 2


def create_app(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    engine: Database | None = None,
    clock: Clock | None = None,
    run_workers: bool = True,
    worker: int = 0,
    workers: int = 1,
) -> web.Application:
    """Build the aiohttp application. Start-up migrates the schema and loads policies and
    directory; an invalid policy set stops start-up with ``PolicyFileError``. With
    ``run_workers=False`` the escalation worker is not scheduled (tests call ``tick`` directly).
    ``worker`` of ``workers`` processes serving one port (``liaison serve --workers``): only
    worker 0 runs the broker-wide jobs, and on SQLite every process reads back what any of them
    committed for live push (``service/commit_feed.py``)."""
    app = web.Application(
        middlewares=[request_context],
        client_max_size=settings.limits.max_body_bytes,
        # Header limits: a client cannot make the broker buffer arbitrarily large header blocks.
        handler_args={
            "max_field_size": settings.limits.max_header_bytes,
            "max_line_size": settings.limits.max_header_bytes,
        },
    )
    own_engine = engine is None
    engine = engine or create_engine(
        resolved_database_url(settings, environ), pool_size=settings.database.pool_size
    )
    clock = clock or SystemClock()
    state = BrokerState(engine, settings.policies_dir, settings.limits, clock)
    app[SETTINGS], app[CLOCK], app[STATE] = settings, clock, state
    app[STARTUP] = Startup()
    metrics_registry.READY.set(0)
    pool = _wire_services(app, settings, environ, state, shared=workers > 1)
    jobs = Jobs(run_workers=run_workers, primary=worker == 0, shared=workers > 1)
    app.cleanup_ctx.append(_lifecycle(pool, own_engine=own_engine, jobs=jobs))
    app.on_shutdown.append(_close_streams)
    if settings.metrics.port and jobs.primary:  # one metrics port per broker: worker 0's
        app.cleanup_ctx.append(metrics.listener(settings, environ))
    _add_routes(app.router)
    return app


def _wire_services(
    app: web.Application,
    settings: Settings,
    environ: Mapping[str, str],
    state: BrokerState,
    *,
    shared: bool,
) -> ThreadPoolExecutor:
    """Pick the drivers and build every service into ``app``; returns the crypto thread pool."""
    engine = state.engine
    escrow = load_escrow_key(settings, environ)  # sealed on disk; opened here, in memory only
    rings = purpose_keys.load_for(settings, environ)  # a key per purpose, or the broker key
    app[PURPOSE_KEYS] = rings
    webhooks = WebhookDriver(rings.webhooks.signers)
    outbox = Outbox(state, settings, environ, webhooks, SmtpMailer())
    pool = ThreadPoolExecutor(CRYPTO_THREADS, thread_name_prefix="liaison-crypto")
    recipient_service = _recipients(settings, state, shared=shared)
    refusals = Refusals(engine, max_sources=settings.audit.refusal_sources_max)
    app[REFUSALS] = refusals
    app[INTAKE] = Intake(
        state,
        refusals=refusals,
        escrow_public=escrow.public_raw,
        escrow_key_id=escrow.key_id("broker"),
        limits=settings.limits,
        pool=pool,
        on_committed=recipient_service.announce,
        announcements=outbox.rows_for,
        cross_border=_federation(app, settings, environ, state, outbox, escrow, refusals),
    )
    app[FEDERATION].on_committed = recipient_service.announce
    app[RECIPIENTS] = recipient_service
    if _distributed(state):  # started once the broker has started (``_listen``)
        url = engine.url.render_as_string(hide_password=False)
        app[LISTENER] = Listener(url, recipient_service.relay, recipient_service.catch_up)
    app[TOKENS] = TokenService(engine, settings, _token_keys(rings), refusals, fetch_jwks)
    app[ESCALATION] = EscalationWorker(
        state, recipient_service, escrow.private_raw, outbox.rows_for
    )
    app[REKEY] = Rekeyer(state, escrow.private_raw)  # a key change re-wraps open notices
    app[RELEASE] = Release(  # two-person release: a second officer's approval routes
        state,
        escrow.private_raw,
        settings.limits.clock_skew_seconds,
        outbox.rows_for,
        recipient_service.announce,
    )
    app[SHREDDER] = Shredder(engine)
    app[ENROLMENT] = Enrolment(engine)  # one-time codes in, pending keys out
    app[OUTBOX] = outbox
    app[AUDIT] = AuditService(
        state,
        rings.log_keys(),
        page_max=settings.audit.events_page_max,
        scan_max=settings.audit.scan_max_events,
        origin=settings.audit.origin,
    )
    _witnessing(app, settings, environ, state)
    return pool


def _witnessing(
    app: web.Application, settings: Settings, environ: Mapping[str, str], state: BrokerState
) -> None:
    """The witness of the peers' logs, and the client that has them cosign this one's: both
    under ``witness_name(<this log's origin>)`` with the broker key (pinned in peer files)."""
    key = ed25519_signer(purpose_keys.broker_key(settings, environ), source="keys.signing_key")
    origin = app[AUDIT].origin
    app[WITNESS] = PeerWitness(state, key, witness_name(origin))
    app[COSIGNING] = CheckpointSubmitter(
        state,
        WitnessDriver(peer_client_context(settings)),
        origin,
        timeout_seconds=settings.webhooks.timeout_seconds,
        backoff_seconds=settings.webhooks.backoff_seconds,
        max_backoff_seconds=settings.webhooks.max_backoff_seconds,
    )


def _federation(
    app: web.Application,
    settings: Settings,
    environ: Mapping[str, str],
    state: BrokerState,
    outbox: Outbox,
    escrow: KeyPair,
    refusals: Refusals,
) -> CrossBorder:
    """Border crossings: the intake hook, the sender of ``peer`` outbox rows (forwards and
    status reports), the receiver of notices and of reports."""
    escrow_id = escrow.key_id("broker")
    forwarding = Forwarding(
        state, escrow_public=escrow.public_raw, escrow_key_id=escrow_id, limits=settings.limits
    )
    driver = PeerDriver(peer_client_context(settings))  # one session for both kinds of row
    broker_key = purpose_keys.broker_key(settings, environ)
    timeout = settings.webhooks.timeout_seconds
    forwarder = PeerForwarder(
        state, driver, broker_key, settings.data_dir / TRUST_DIR, timeout_seconds=timeout
    )
    reporter = StatusReporter(state, driver, broker_key, timeout_seconds=timeout)
    app[REPORTER] = reporter

    async def peer_attempt(item: OutboxItem, now: datetime) -> WebhookResult:
        if is_status(item):
            return await reporter.attempt(item, now)
        return await forwarder.attempt(item, now)

    outbox.peers = peer_attempt
    app[FEDERATION_STATUS] = ReportIntake(state, limits=settings.limits, refusals=refusals)
    app[FEDERATION] = Receiver(
        state,
        escrow_private=escrow.private_raw,
        escrow_key_id=escrow_id,
        limits=settings.limits,
        refusals=refusals,
        announcements=outbox.rows_for,
    )
    return forwarding.accept


def _token_keys(rings: purpose_keys.PurposeKeys) -> TokenKeys:
    active = rings.tokens.active
    if active.private is None:  # cannot happen with a loaded ring: never sign without a key
        raise ConfigError(f"the active tokens key {active.kid} has no private key")
    verifying = {k.kid: k.private.public_key() for k in rings.tokens.verifying if k.private}
    return TokenKeys(active.private, active.kid, verifying)


def _recipients(settings: Settings, state: BrokerState, *, shared: bool) -> Recipients:
    hub = Hub(settings.delivery.stream_queue_events)
    state.on_directory_change.append(hub.wake_all)  # open streams re-check their tokens
    # Several processes: push travels by NOTIFY (PostgreSQL) or is read back from the file.
    distributed = _distributed(state) or shared
    return Recipients(state, hub, page_max=settings.limits.inbox_page_max, distributed=distributed)


def _distributed(state: BrokerState) -> bool:
    return state.engine.dialect.name == "postgresql"


@dataclass(frozen=True, slots=True)
class Jobs:
    """Which background jobs this process runs."""

    run_workers: bool  # the delivery jobs at all (tests call their ``tick`` directly)
    primary: bool  # worker 0: the broker-wide jobs, once per broker
    shared: bool  # other processes serve the same store


def _add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", health.healthz)
    router.add_get("/readyz", health.readyz)
    router.add_get("/openapi.json", openapi.serve)
    router.add_post("/v1/notices", notices.post_notice)
    router.add_get("/v1/notices/{id}/status", notices.get_status)
    router.add_get("/v1/notices", notices.get_sent)
    release.add_routes(router)
    router.add_post("/v1/token", recipients.post_token)
    router.add_get("/.well-known/oauth-authorization-server", oauth.metadata)
    router.add_get("/.well-known/jwks.json", oauth.jwks)
    router.add_get("/v1/keys/log", published_keys.log_keys)
    router.add_get("/v1/keys/webhooks", published_keys.webhook_keys)
    router.add_get("/v1/keys/witness", witness.witness_key)
    router.add_post("/v1/witness/add-checkpoint", witness.add_checkpoint)
    router.add_get("/v1/inbox", recipients.get_inbox)
    router.add_get("/v1/notices/{id}", recipients.get_notice)
    router.add_post("/v1/notices/{id}/ack", recipients.post_ack)
    router.add_get("/v1/stream", recipients.get_stream)
    router.add_get("/v1/audit/events", audit.get_events)
    router.add_get("/v1/audit/checkpoint", audit.get_checkpoint)
    router.add_get("/v1/audit/checkpoints", audit.get_checkpoints)
    router.add_get("/v1/audit/proof/inclusion", audit.get_inclusion)
    router.add_get("/v1/audit/proof/consistency", audit.get_consistency)
    router.add_get("/v1/directory/continuity", audit.get_continuity)
    router.add_get("/v1/trust/{name}", trust.get_file)
    router.add_post("/v1/enrol", enrol.post_enrol)
    router.add_post("/v1/federation/notices", federation.post_notice)
    router.add_post("/v1/federation/status", federation.post_status)
    web_inbox.add_routes(router)


async def _close_streams(app: web.Application) -> None:
    app[RECIPIENTS].hub.close_all()


def _lifecycle(
    pool: ThreadPoolExecutor, *, own_engine: bool, jobs: Jobs
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        try:
            await _start(app)
            _begin(app, tasks, jobs)
        except StoreUnavailable as e:  # keep serving 503 and try again until the store answers
            _waiting(app, e)
            tasks.append(asyncio.create_task(_start_later(app, tasks, jobs)))
        yield
        if LISTENER in app:  # let it close its connection itself; cancelling mid-connect leaks
            await app[LISTENER].stop()
            await asyncio.wait([t for t in tasks if t.get_name() == "notify-listener"], timeout=5)
        await _stop(app, tasks, pool, own_engine=own_engine)

    return lifecycle


def _waiting(app: web.Application, error: StoreUnavailable) -> None:
    startup = app[STARTUP]
    startup.waiting(f"store_unavailable: {error.detail or error.message}")
    if startup.attempts == 1:
        log.warning("broker_waiting_for_store", reason=startup.waiting_for)


async def _start_later(app: web.Application, tasks: list[asyncio.Task[None]], jobs: Jobs) -> None:
    """Start-up again with backoff until the store answers; a policy set found invalid meanwhile
    is logged and waited out the same way (the operator fixes it, the broker starts)."""
    while True:
        jitter = random.random()  # noqa: S311 - spreads retries, not a secret
        delay = retry_delay(app[STARTUP].attempts, 0.5, START_RETRY_CAP_SECONDS, None, jitter)
        await asyncio.sleep(delay)
        try:
            await _start(app)
        except StoreUnavailable as e:
            _waiting(app, e)
            continue
        except LiaisonError as e:
            app[STARTUP].waiting(f"{e.code}: {e.message}")
            log.error("broker_start_refused", code=e.code, problem=e.message)
            continue
        except Exception as e:  # never a silent end: a broker that gave up would wait forever
            app[STARTUP].waiting(f"start-up failed: {type(e).__name__}")
            log.error("broker_start_failed", error=type(e).__name__, exc_info=e)
            continue
        _begin(app, tasks, jobs)
        return


def _begin(app: web.Application, tasks: list[asyncio.Task[None]], jobs: Jobs) -> None:
    """The store answered and the policies are loaded: start the workers, then say ready."""
    tasks += [asyncio.create_task(w.run(), name=w.name) for w in _workers(app, jobs)]
    tasks += _feed(app, shared=jobs.shared)
    listener = _listen(app)
    if listener is not None:
        tasks.append(listener)
    log.info("background_jobs", jobs=len(tasks), broker_wide=jobs.primary)
    app[STARTUP].started()


async def _start(app: web.Application) -> None:
    settings, state = app[SETTINGS], app[STATE]
    await migrate(state.engine)
    view = await state.load()
    await app[TOKENS].refresh_jwks()
    if not settings.server.public_url:  # derived from settings, never from a request
        log.warning("public_url_derived", public_url=settings.public_url)
    log.info(
        "broker_started",
        public_url=settings.public_url,
        policy_hash=view.policies.hash,
        directory_revision=view.directory_revision,
        channels=len(view.policies.channels),
    )


def _workers(app: web.Application, jobs: Jobs) -> list[Worker]:
    """The background jobs. Every process keeps its own view and counts; the broker-wide jobs
    run in the primary only (worker 0 of ``liaison serve --workers``), and the delivery ones
    (outbox, shredding, escalation, re-wrap) also only with ``run_workers``."""
    settings, state, clock = app[SETTINGS], app[STATE], app[CLOCK]
    workers = [
        Worker("directory", DIRECTORY_POLL_SECONDS, state.refresh_directory),
        Worker(
            "refusal_summary",
            float(settings.audit.refusal_summary_seconds),
            lambda: app[REFUSALS].flush(clock.now()),
        ),
    ]
    if settings.oidc.jwks_url:
        workers.append(Worker("jwks", JWKS_REFRESH_SECONDS, app[TOKENS].refresh_jwks))
    return workers + (_broker_wide(app, run_workers=jobs.run_workers) if jobs.primary else [])


def _broker_wide(app: web.Application, *, run_workers: bool) -> list[Worker]:
    """The jobs that run once per broker, whatever the number of processes. The checkpoint runs
    once at start too: a log grown since the last signed checkpoint (a crash, frequent restarts)
    is signed within seconds, not an interval later."""
    settings, state, clock = app[SETTINGS], app[STATE], app[CLOCK]
    workers = [
        Worker(
            "nonce_purge",
            NONCE_PURGE_SECONDS,
            lambda: purge_nonces(state.engine, clock.now() - timedelta(seconds=1)),
        ),
        Worker(
            "checkpoint",
            float(settings.audit.checkpoint_interval_seconds),
            lambda: _checkpoint(app, witnesses=run_workers),
            first_delay=0.0,
        ),
    ]
    if run_workers:
        workers += [
            Worker("outbox", OUTBOX_SECONDS, lambda: app[OUTBOX].tick(clock.now())),
            Worker(
                "retention",
                float(settings.retention.shred_interval_seconds),
                lambda: app[SHREDDER].tick(clock.now()),
            ),
            Worker(
                "escalation",
                float(settings.delivery.escalation_interval_seconds),
                lambda: app[ESCALATION].tick(clock.now()),
            ),
            # As often as the directory is polled: a key change re-wraps at once (cheap otherwise).
            Worker("rekey", DIRECTORY_POLL_SECONDS, lambda: app[REKEY].run(clock.now())),
            Worker("release", RELEASE_SECONDS, lambda: app[RELEASE].expire(clock.now())),
            # Received notices whose per-role state changed: their report is queued again.
            Worker("peer_reports", REPORT_SWEEP_SECONDS, lambda: app[REPORTER].sweep(clock.now())),
        ]
    return workers


async def _checkpoint(app: web.Application, *, witnesses: bool) -> None:
    """Sign the log as it stands, then have the peers' witnesses cosign the latest checkpoint."""
    clock = app[CLOCK]
    await app[AUDIT].checkpoint(clock.now())
    if witnesses:
        await app[COSIGNING].tick(clock.now())


def _feed(app: web.Application, *, shared: bool) -> list[asyncio.Task[None]]:
    """On SQLite served by several processes: the read-back of every commit for live push."""
    state = app[STATE]
    path = sqlite_file(state.engine)
    if not shared or path is None:
        return []
    watch = CommitWatch(path, FEED_POLL_SECONDS)
    recipient_service = app[RECIPIENTS]
    feed = CommitFeed(state, recipient_service.hub, recipient_service.publisher, watch.changed)

    async def run() -> None:
        try:
            await feed.run()
        finally:
            watch.close()

    return [asyncio.create_task(run(), name="commit-feed")]


def _listen(app: web.Application) -> asyncio.Task[None] | None:
    """With PostgreSQL (several processes), the NOTIFY listener that relays pushes, supervised
    like the other workers (it reconnects by itself; an unexpected error restarts it)."""
    listener = app.get(LISTENER)
    if not isinstance(listener, Listener):
        return None
    worker = Worker(
        "listener",
        0.0,
        listener.run,
        first_delay=0.0,
        long_running=True,
        stopping=listener.stopping,
    )
    return asyncio.create_task(worker.run(), name="notify-listener")


async def _stop(
    app: web.Application,
    tasks: list[asyncio.Task[None]],
    pool: ThreadPoolExecutor,
    *,
    own_engine: bool,
) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app[INTAKE].batcher.close()
    with contextlib.suppress(StoreError, OSError):  # the last interval's counts
        await app[REFUSALS].flush(app[CLOCK].now())
    await app[RECIPIENTS].close()
    pool.shutdown(wait=True)
    await app[OUTBOX].close()
    await app[COSIGNING].close()
    if own_engine:
        await app[STATE].engine.dispose()
