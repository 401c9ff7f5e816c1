"""Database engines and schema migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: a committed transaction
survives a power cut, which is what a 201 from the broker promises. Every connection has
``secure_delete`` on, and ``purge_history`` (after a shred round) checkpoints the WAL into the
database and truncates it, so that no old page image of a shredded row stays in either file
(on PostgreSQL it is the operator's ``liaison store purge``: see ``purge_history``).
PostgreSQL is reached through asyncpg with a small pool. ``migrate`` brings any database to the newest schema in place.
"""

from __future__ import annotations

import asyncio
import os
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from broker.errors import StoreUnavailable
from broker.store import boundary
from broker.store.health import health_of

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URLs."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
    )


def sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted and overwritten content is zeroed in the page (and in freed pages), so that a
    # shredded ciphertext or wrap is not left in the file's free space.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to the newest revision, in one transaction where the backend allows.

    Only an unreachable database is ``StoreUnavailable`` here (not the boundary's every driver
    error): a migration the database refuses is a fault to see as it is.
    """
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    except (OperationalError, OSError) as e:
        cause = health_of(engine).failed(e)
        raise StoreUnavailable("database unreachable", detail=f"{cause}: {type(e).__name__}") from e


def _upgrade(conn: Connection) -> None:
    """alembic's ``upgrade head``; not even imported (a third of a second, paid by every
    ``liaison`` command that opens the store) when the store is at the one newest revision."""
    if _at_newest(conn):
        return
    from alembic import command

    command.upgrade(_alembic_config(conn), "head")


def _at_newest(conn: Connection) -> bool:
    newest = newest_revision()
    if newest is None or not inspect(conn).has_table("alembic_version"):
        return False
    stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return list(stored) == [newest]


_REVISION = re.compile(r'^revision(?:: *[\w| \[\],]+)? *= *"([^"]+)" *$', re.M)
_DOWN = re.compile(r'^down_revision(?:: *[\w| \[\],]+)? *= *(?:None|"([^"]+)") *$', re.M)


@cache
def newest_revision() -> str | None:
    """The head of the migration scripts, read from their ``revision = "…"`` and
    ``down_revision = "…"`` lines; None (alembic decides) unless every script has both lines in
    that plain form and they make one head. ``tests/unit/test_cli_imports.py`` compares it
    with alembic's own ``get_current_head``."""
    chain: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(source), _DOWN.findall(source)
        if len(revision) != 1 or len(down) != 1:
            return None
        chain[revision[0]] = down[0] or None
    heads = set(chain) - set(chain.values())
    return heads.pop() if len(heads) == 1 else None


async def schema_state(engine: AsyncEngine) -> tuple[str | None, str]:
    """(current revision, newest revision): equal when the database is up to date."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    def read(conn: Connection) -> tuple[str | None, str]:
        current = MigrationContext.configure(conn).get_current_revision()
        head = ScriptDirectory.from_config(_alembic_config(conn)).get_current_head()
        return current, head or ""

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers a trivial query."""
    try:
        async with boundary.connection(engine) as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except StoreUnavailable:
        return False


async def write_refusal(engine: AsyncEngine, min_free_bytes: int) -> str | None:
    """Why the store cannot take a write now (None when it can): readiness asks this.

    SQLite: free space beside the database file below ``min_free_bytes`` (``disk_full``) or a
    file the process may not write (``read_only``). PostgreSQL: a read-only server or session
    (a standby after a failover). Either: a write the disk refused in the last
    ``WRITE_FAILURE_HOLD`` seconds (``store.health``).
    """
    recent = health_of(engine).write_failed_within(WRITE_FAILURE_HOLD)
    if recent is not None:
        return f"{recent}: the last write was refused"
    if engine.dialect.name == "sqlite":
        return await asyncio.to_thread(_sqlite_refusal, engine.url.database, min_free_bytes)
    try:
        async with boundary.connection(engine) as conn:
            read_only = (await conn.execute(text("SHOW transaction_read_only"))).scalar()
    except StoreUnavailable as e:
        return e.detail or "database_down"
    return "read_only: the server takes no writes" if read_only == "on" else None


WRITE_FAILURE_HOLD = 30.0  # seconds /readyz stays false after the disk refused a write


def _sqlite_refusal(database: str | None, min_free_bytes: int) -> str | None:
    if not database or database == ":memory:":
        return None
    path = Path(database)
    folder = path.parent
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    if free < min_free_bytes:
        return (
            f"disk_full: {free} bytes free beside the database, "
            f"below database.min_free_bytes ({min_free_bytes})"
        )
    if not os.access(path if path.exists() else folder, os.W_OK):
        return "read_only: the database file is not writable"
    return None


async def purge_history(engine: AsyncEngine, *, rewrite: bool = False) -> str:
    """Make destroyed rows unrecoverable from the store's own files, as far as the engine allows.

    SQLite: ``PRAGMA wal_checkpoint(TRUNCATE)`` copies every committed page into the database
    (overwriting the old images, already zeroed by ``secure_delete``) and truncates the WAL to
    zero bytes: "truncated", or "busy" when a reader held an old snapshot (try again later).
    PostgreSQL: a plain VACUUM frees dead tuples but leaves their bytes in the page (measured in
    tests/integration/test_shredding.py), and only a rewrite (``VACUUM FULL``) removes them from
    the table files, under an ACCESS EXCLUSIVE lock that stops intake and reads while it runs. So
    a shred round does nothing more there ("deferred"), and the operator runs the rewrite
    (``rewrite=True``, ``liaison store purge``) in a maintenance window: "rewritten".
    WAL segments, archives, replicas and backups are the operator's: deploy/OPERATIONS.md.
    """
    if engine.dialect.name == "sqlite":
        async with boundary.connection(engine) as conn:
            result = await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            busy = int(result.one()[0])
            await conn.commit()
            return "busy" if busy else "truncated"
    if not rewrite:
        return "deferred"
    async with boundary.connection(engine) as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in SHREDDED_TABLES:
            await auto.exec_driver_sql(f"VACUUM (FULL) {table}")
    return "rewritten"


# The tables a shred rewrites: the notice row (ciphertext set to NULL) and its wraps (deleted).
SHREDDED_TABLES = ("notice", "notice_wrap")
