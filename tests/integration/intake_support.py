"""A running broker on loopback over the demo directory, and signing helpers for agencies."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import make_url, text

from adapters.client.recipient import RecipientClient
from adapters.client.sender import SenderClient
from adapters.client.trust import PinnedRoot
from broker.app import create_app
from broker.clock import Clock
from broker.config import load_settings, resolved_database_url
from broker.crypto.httpsig import content_digest, sign_request
from broker.crypto.keys import KeyPair, generate, read_private_key, write_private_key
from broker.http.keys import STATE
from broker.service.directory import apply_directory_file
from broker.state import BrokerState
from broker.store.engine import create_engine, migrate
from tests.conftest import NOW, PG_URL
from tests.support import LoopbackServer, free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@dataclass
class Broker:
    url: str
    data: Path
    state: BrokerState
    app: web.Application

    def recipient(self, contact: str, clock: Clock | None = None) -> RecipientClient:
        signing = read_private_key(self.data / "keys" / f"{contact}.pem", expected="ed25519")
        decryption = read_private_key(
            self.data / "keys" / f"{contact}.x25519.pem", expected="x25519"
        )
        options = {"clock": clock.now} if clock is not None else {}
        trust = PinnedRoot.from_file(self.data / "trust" / "root.json")
        return RecipientClient(self.url, contact, signing, decryption, trust=trust, **options)  # type: ignore[arg-type]

    def purpose_key(self, purpose: str) -> KeyPair:
        """The active key of one of the broker's purposes (tokens, log, webhooks)."""
        rings = json.loads((self.data / "keys" / "purposes.json").read_text())["keys"]
        active = next(e for e in rings[purpose] if e["state"] == "active")
        return read_private_key(self.data / "keys" / active["file"], expected="ed25519")

    def agency_key(self, agency: str) -> KeyPair:
        return read_private_key(self.data / "keys" / f"{agency}.pem", expected="ed25519")

    def sender(self, agency: str, clock: Clock | None = None) -> SenderClient:
        pair = self.agency_key(agency)
        options = {"clock": (lambda: clock.now().timestamp())} if clock is not None else {}
        return SenderClient.from_pem(
            self.url, pair.pem(), pair.key_id(agency), retries=0, **options
        )

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.state.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.state.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())


@asynccontextmanager
async def running_broker(
    data: Path,
    database_url: str,
    *,
    clock: Clock | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    prepared: bool = True,
) -> AsyncIterator[Broker]:
    """Serve ``data`` (a demo data directory) on loopback, its store at ``database_url``.

    With a ``clock``, the escalation worker is not scheduled: the test calls ``tick`` itself.
    A ``port`` given serves at that URL again (a restart: tokens name the URL as issuer).
    ``prepared=False``: a new store is migrated and given the directory by this test's own code
    (one that changes how the store is written), not copied from a prepared one.
    """
    port = (
        port or free_port()
    )  # known before start: the broker's public URL is configuration, never Host
    env = {
        "LIAISON_DATABASE_URL": database_url,
        "LIAISON_SERVER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **(env or {}),
    }
    settings = load_settings(data, env)
    url = resolved_database_url(settings, env)
    await (_prepare_store(data, url) if prepared else _migrate_and_apply(data, url))
    app = create_app(settings, env, clock=clock, run_workers=clock is None)
    async with LoopbackServer(app, port) as server:
        yield Broker(server.url, data, app[STATE], app)


async def _migrate_and_apply(data: Path, url: str) -> None:
    engine = create_engine(url)  # a fresh database: give it the directory
    try:
        await migrate(engine)
        await apply_directory_file(
            engine, data / "directory.yaml", actor="test", now=NOW, max_bytes=10**7
        )
    finally:
        await engine.dispose()


# A new store is a copy of one migrated and given the same directory file before (per test
# process): migrating and applying the 700-entry demo directory took 2-3 s a broker, the largest
# part of most integration tests. A SQLite file is copied with SQLite's backup; an empty
# PostgreSQL database is made again from a template database (``TEMPLATE``, dropped when the
# test process ends). A store that holds a schema already (a restart) is migrated and applied as
# before, which changes nothing.
SQLITE_TEMPLATES: dict[str, Path] = {}  # tests/conftest.py removes both at the session's end
PG_TEMPLATES: list[str] = []


async def _prepare_store(data: Path, url: str) -> None:
    if url.startswith("postgresql"):
        await _prepare_postgres(data, url)
        return
    database, digest = _fresh_sqlite(data, url)
    if database is None:
        await _migrate_and_apply(data, url)
        return
    template = SQLITE_TEMPLATES.get(digest)
    if template is None:
        template = Path(tempfile.mkdtemp(prefix="liaison-store-")) / "prepared.db"
        await _migrate_and_apply(data, f"sqlite+aiosqlite:///{template}")
        SQLITE_TEMPLATES[digest] = template
    _copy_store(template, database)


async def _prepare_postgres(data: Path, url: str) -> None:
    target = make_url(url)
    admin = await asyncpg.connect(PG_URL, timeout=10)
    try:
        probe = await asyncpg.connect(
            target.set(drivername="postgresql").render_as_string(hide_password=False), timeout=10
        )
        try:
            schema = await probe.fetchval("SELECT to_regclass('public.alembic_version')")
        finally:
            await probe.close()
        if schema is not None:
            await _migrate_and_apply(data, url)
            return
        template = f"liaison_tpl_{_directory_digest(data)[:12]}_{os.getpid()}"
        if template not in PG_TEMPLATES:
            await admin.execute(f'CREATE DATABASE "{template}"')
            PG_TEMPLATES.append(template)
            await _migrate_and_apply(
                data, target.set(database=template).render_as_string(hide_password=False)
            )
        await admin.execute(f'DROP DATABASE "{target.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{target.database}" TEMPLATE "{template}"')
    finally:
        await admin.close()


def _fresh_sqlite(data: Path, url: str) -> tuple[Path | None, str]:
    """A SQLite file that does not exist yet, and the hash of the directory it is to hold."""
    database = make_url(url).database if url.startswith("sqlite") else None
    if not database or database == ":memory:" or Path(database).exists():
        return None, ""
    return Path(database), _directory_digest(data)


def _directory_digest(data: Path) -> str:
    return hashlib.sha256((data / "directory.yaml").read_bytes()).hexdigest()


def _copy_store(template: Path, database: Path) -> None:
    with (
        contextlib.closing(sqlite3.connect(template)) as source,
        contextlib.closing(sqlite3.connect(database)) as target,
    ):
        source.backup(target)
    database.chmod(0o600)


def signed_headers(
    url: str,
    body: bytes,
    key: Ed25519PrivateKey,
    keyid: str,
    *,
    created: int | None = None,
    components: tuple[str, ...] = ("@method", "@target-uri", "content-type", "content-digest"),
    nonce: str | None = None,
    content_type: str = "application/json",
    method: str = "POST",
    digest_of: bytes | None = None,
) -> dict[str, str]:
    headers = {
        "Content-Type": content_type,
        "Content-Digest": content_digest(body if digest_of is None else digest_of),
    }
    headers.update(
        sign_request(
            method=method,
            url=url,
            headers=headers,
            key=key,
            keyid=keyid,
            created=created or int(time.time()),
            components=components,
            nonce=nonce,
        )
    )
    return headers


async def post_raw(
    url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers=headers) as response,
    ):
        document = await response.json(content_type=None)
        return response.status, document, dict(response.headers)


SUCCESSOR = "mk-kumanovo-swc-2"
SWC_HOLDER = "{role: mk-kumanovo.social-welfare-centre, contact: mk-kumanovo-swc, as: holder, from: '2026-01-01T00:00:00Z'}"


def hand_over_swc(broker: Broker, at: datetime) -> str:
    """The directory text in which the social-welfare centre passes to a successor at ``at``."""
    when = at.isoformat().replace("+00:00", "Z")
    signing, decryption = generate("ed25519"), generate("x25519")
    write_private_key(broker.data / "keys" / f"{SUCCESSOR}.pem", signing)
    write_private_key(broker.data / "keys" / f"{SUCCESSOR}.x25519.pem", decryption)
    text = (broker.data / "directory.yaml").read_text()
    assert SWC_HOLDER in text, "demo assignment format changed"
    keys = (
        f"[{{id: {signing.key_id(SUCCESSOR)}, type: ed25519, public: '{signing.public_b64}'}}, "
        f"{{id: {decryption.key_id(SUCCESSOR)}, type: x25519, public: '{decryption.public_b64}'}}]"
    )
    text = text.replace(
        SWC_HOLDER,
        SWC_HOLDER.replace("'}", f"', until: '{when}'}}")
        + f"\n  - {{role: mk-kumanovo.social-welfare-centre, contact: {SUCCESSOR}, as: holder, from: '{when}'}}",
    )
    return text.replace(
        "\nassignments:",
        f"\n  - {{id: {SUCCESSOR}, name: Vesna Successor, organisation: "
        f"mk-kumanovo.social-work-centre, language: mk, email: swc2@mk-kumanovo.demo.invalid, "
        f"keys: {keys}}}\nassignments:",
    )
