"""The one place where the database's own errors become ``StoreUnavailable``.

Every store function reaches the database through ``transaction`` (a write: committed when the
block ends, rolled back when it raises) or ``connection`` (reads), or through ``fetch_first`` /
``fetch_all`` for a single query, or, for the raw group writers, ``raw_errors``. A driver
error raised anywhere inside, the commit included, leaves as ``StoreUnavailable`` with the
driver's error as its ``__cause__``: SQLAlchemy's
``DBAPIError`` (which wraps sqlite3/aiosqlite and asyncpg errors) and ``OSError`` (a refused or
dropped socket, a timeout, a file that cannot be opened, which the drivers let through raw).
Nothing else is touched: the store's own answers (``NonceReplayed``, ``StoreUnavailable`` raised
on purpose, a private "skip" signal) pass through as they are.

A uniqueness conflict is an ``IntegrityError``, a ``DBAPIError`` like the others, so it is an
outage unless the code expects it, in one of two ways:

- a block that expects a conflict on one statement runs it in a savepoint
  (``conn.begin_nested()``) and catches the ``IntegrityError`` inside, before it reaches the
  boundary (the nonce, the idempotency key, a recipient who already has a delivery);
- a transaction whose conflict means "undo all of it and tell the caller" names the exception
  the caller gets, ``transaction(db, conflict=BatchConflict)``: the transaction is rolled back
  and that exception raised from the ``IntegrityError``.

Each outage is also recorded in ``store.health`` (its cause, one WARNING per change) and the
``StoreUnavailable`` carries the cause as its detail (``disk_full: OperationalError``), which
the request's log line shows; a committed write (or, for the causes a read can disprove, a
read) records the recovery.

A PostgreSQL connection lost once COMMIT has been sent is not an outage the caller may report
as "nothing stored": the server may have made the transaction durable before it went. That is
``CommitInDoubt`` (a ``StoreUnavailable``, 503 ``commit_in_doubt``), and intake resolves it by
reading the request's idempotency record before it answers (tests/integration/test_commit_in_doubt.py).

The writers of the hot path to one SQLite file (the raw group commit of intake and the
"delivered" marks of live push) take ``write_turn`` first: SQLite has one writer at a time, and
a writer that finds the file locked sleeps in SQLite's busy handler in steps of 1, 2, 5, 10, 15,
20, 25 … 100 ms, however soon the lock is free again (commits 30 to 80 ms late at 50 notices/s to
5,000 live clients). Waiting in line in the event loop instead costs nothing. Other writers,
and other processes, still meet the file lock and its busy handler as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.errors import CommitInDoubt, StoreUnavailable
from broker.store import Database
from broker.store.health import health_of

UNAVAILABLE = "database unavailable"

_TURNS: weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[Any, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def write_turn(db: Database) -> AbstractAsyncContextManager[Any]:
    """This process's turn to write to ``db``'s SQLite file (a no-op on PostgreSQL). One lock
    per database and event loop; hold it around a whole write transaction, never nested."""
    if db.dialect.name != "sqlite":
        return nullcontext()
    loop = asyncio.get_running_loop()
    per_loop = _TURNS.setdefault(db.sync_engine, weakref.WeakKeyDictionary())
    turn = per_loop.get(loop)
    if turn is None:
        turn = per_loop[loop] = asyncio.Lock()
    return turn


# What a driver raises when the database cannot do what was asked. TimeoutError is an OSError.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (DBAPIError, OSError)


@asynccontextmanager
async def transaction(
    db: Database, *, conflict: type[Exception] | None = None, message: str = UNAVAILABLE
) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction that commits when the block ends without an exception.

    A driver error inside rolls back and raises ``StoreUnavailable(message)``, and so does one on
    commit that proves the rollback (SQLite's, or a PostgreSQL server ``ERROR``); with
    ``conflict``, an ``IntegrityError`` that reaches here raises ``conflict()`` instead. Any
    other failure on a PostgreSQL COMMIT raises ``CommitInDoubt``: the server may have
    committed before the connection went (``in_doubt``).
    """
    committing = False
    try:
        async with db.begin() as conn:
            yield conn
            committing = True  # the block is done: what fails from here fails in COMMIT
    except IntegrityError as e:
        if conflict is not None:
            raise conflict() from e
        raise _unavailable(db, message, e) from e
    except DRIVER_ERRORS as e:
        if committing and in_doubt(db, e):
            cause = health_of(db).failed(e)
            raise CommitInDoubt(IN_DOUBT, detail=f"in doubt, {cause}: {type(e).__name__}") from e
        raise _unavailable(db, message, e) from e
    health_of(db).succeeded(wrote=True)


IN_DOUBT = (
    "the connection to the database was lost while committing: the change may have been stored; "
    "a notice: post it again under the same Idempotency-Key to learn which"
)


def in_doubt(db: Database, error: BaseException) -> bool:
    """Whether a COMMIT that raised ``error`` may still have committed.

    A SQLite commit that raises did not commit (the file is this process's own). On PostgreSQL
    only an answer from the server (an ``ERROR``: a conflict, a serialization failure) proves
    the transaction was rolled back; a lost connection, a timeout or a ``FATAL`` shutdown
    message can come after the commit record is durable.
    """
    if db.dialect.name == "sqlite":
        return False
    return not any(
        isinstance(e, asyncpg.PostgresError) and getattr(e, "severity_en", None) == "ERROR"
        for e in _wrapped(error)
    )


def _wrapped(error: BaseException) -> list[BaseException]:
    """``error`` and the driver errors it wraps (``orig``, ``__cause__``) — never its
    ``__context__``: an error raised while another was being handled (a notice committed alone
    after its batch's conflict) must not be judged by that other one's server ERROR."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return seen


# What the raw drivers of the group writers raise (``store.sqlite_writer``, ``store.pg_writer``).
RAW_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


@contextmanager
def raw_errors(db: Database | None = None, message: str = UNAVAILABLE) -> Iterator[None]:
    """The same boundary for code that holds a raw driver connection (sqlite3, asyncpg): a
    driver error inside raises ``StoreUnavailable(message)``, the store's own answers pass.
    With ``db``, the outage's cause and the recovery are recorded in its health, as a
    transaction records them (so readiness clears once a raw write succeeds again)."""
    try:
        yield
    except RAW_DRIVER_ERRORS as e:
        if db is None:
            raise StoreUnavailable(message) from e
        raise _unavailable(db, message, e) from e
    if db is not None:
        health_of(db).succeeded(wrote=True)


@asynccontextmanager
async def connection(db: Database, *, message: str = UNAVAILABLE) -> AsyncIterator[AsyncConnection]:
    """A connection for reads (or for statements that manage their own transaction).

    A driver error inside raises ``StoreUnavailable(message)``.
    """
    try:
        async with db.connect() as conn:
            yield conn
    except DRIVER_ERRORS as e:
        raise _unavailable(db, message, e) from e
    health_of(db).succeeded(wrote=False)


def _unavailable(db: Database, message: str, error: BaseException) -> StoreUnavailable:
    """The outage as the caller gets it, its cause recorded (and logged once per change)."""
    cause = health_of(db).failed(error)
    return StoreUnavailable(message, detail=f"{cause}: {type(error).__name__}")


async def fetch_first(db: Database, statement: Any) -> Any:
    """The first row ``statement`` selects, or None."""
    async with connection(db) as conn:
        return (await conn.execute(statement)).first()


async def fetch_all(db: Database, statement: Any) -> list[Any]:
    """Every row ``statement`` selects."""
    async with connection(db) as conn:
        return list((await conn.execute(statement)).all())
