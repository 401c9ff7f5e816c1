"""The group commit on SQLite without SQLAlchemy's statement building: one thread, one raw
``sqlite3`` connection, ``executemany`` per table, one transaction per round. Live push's
"delivered" marks use a writer of their own (``mark_delivered``), for the same reason.

Invariants:
- the rows are those ``intake_repo.commit_notices`` (and ``deliveries_repo.mark_delivered``)
  write, byte for byte: the columns, their
  Python-side defaults and their bind processors (UTC datetimes as SQLite text, booleans,
  blobs) are taken from the SQLAlchemy tables and dialect once, at start, and the audit rows
  come from ``audit_repo.chain`` (tests/integration/test_raw_commit.py compares every row);
- a call returns only after ``COMMIT`` did, on a connection with the engine's pragmas (WAL,
  ``synchronous=FULL``): a waiter answered is a notice on disk;
- a round waits for this process's ``write_turn`` before it starts (the other writers of the
  hot path wait for it too, instead of sleeping in SQLite's busy handler);
- ``BEGIN IMMEDIATE`` takes SQLite's write lock before the first read of the audit head, as
  ``lock_head`` does for the SQLAlchemy writers, so delivery ids and audit sequence numbers are
  given out in commit order whoever else writes to the file;
- errors leave as the store's answers: a conflict in a batch is ``BatchConflict`` (nothing
  stored), alone it is ``NonceReplayed`` or ``IdempotencyRace``; any other driver error is
  ``StoreUnavailable`` with the driver's error as its cause (``boundary.raw_errors``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect

from broker.audit.events import AuditEvent
from broker.store import Database, audit_repo, intake_repo, outbox_repo
from broker.store.boundary import raw_errors, write_turn
from broker.store.engine import sqlite_pragmas
from broker.store.intake_repo import BatchConflict, IdempotencyRace, NonceReplayed, NoticeWrite
from broker.store.raw_rows import RawTable

T = TypeVar("T")


class SqliteGroupWriter:
    """``commit_notices`` / ``commit_notice`` for one SQLite file, on a thread of its own."""

    def __init__(
        self, path: str, dialect: Dialect, *, timeout: float = 30, db: Database | None = None
    ) -> None:
        self.path = path
        self.db = db  # its health records the outages and recoveries of these writes
        self.timeout = timeout  # seconds to wait for another writer's lock, as the engine's
        self._notice = RawTable(intake_repo.notice_t, dialect)
        self._wrap = RawTable(intake_repo.wrap_t, dialect)
        self._delivery = RawTable(intake_repo.delivery_t, dialect)
        self._release = RawTable(intake_repo.release_t, dialect)  # held notices
        self._nonce = RawTable(intake_repo.nonce_t, dialect)
        self._idempotency = RawTable(intake_repo.idempotency_t, dialect)
        # The outbox skips a message that exists already, as ``outbox_repo.add`` does.
        self._outbox = RawTable(outbox_repo.outbox_t, dialect, or_ignore=True)
        self._event = RawTable(audit_repo.event_t, dialect)
        # As raw_rows binds: the dialect's implementation of the type (SQLite's DATETIME text).
        delivered_at = intake_repo.delivery_t.c.delivered_at.type
        process = delivered_at.dialect_impl(dialect).bind_processor(dialect)
        self._delivered_at: Callable[[datetime], Any] = process or (lambda at: at)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None  # opened and used on the pool's thread only

    async def commit_notices(self, writes: Sequence[NoticeWrite]) -> None:
        """All of ``writes`` in one transaction, or ``BatchConflict`` and nothing stored."""
        await self._run(writes, single=False)

    async def commit_notice(self, write: NoticeWrite) -> None:
        """One notice alone: ``NonceReplayed`` / ``IdempotencyRace`` name a conflict."""
        await self._run([write], single=True)

    async def mark_delivered(
        self,
        ids: Sequence[int],
        now: datetime,
        events_for: Callable[[list[int]], Sequence[AuditEvent]],
    ) -> list[int]:
        """``deliveries_repo.mark_delivered`` on this thread, in one transaction that holds the
        write lock for a millisecond, not for the event loop's hops between its statements."""
        if not ids:
            return []
        unique = list(dict.fromkeys(ids))  # two streams of one contact may name one delivery
        return await self._in_turn(self._mark, unique, now, events_for)

    def _mark(
        self,
        ids: list[int],
        now: datetime,
        events_for: Callable[[list[int]], Sequence[AuditEvent]],
    ) -> list[int]:
        with raw_errors(self.db):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                pending = self._undelivered(conn, ids)
                if pending:
                    at = self._delivered_at(now)
                    # deliveries_repo._advance("delivered"): only a pending one moves forward.
                    conn.executemany(
                        'UPDATE "delivery" SET delivered_at = ?, state = CASE WHEN state IN '
                        "('pending') THEN 'delivered' ELSE state END "
                        "WHERE id = ? AND delivered_at IS NULL",
                        [(at, i) for i in pending],
                    )
                    self._append(conn, events_for(pending), None)
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
        return pending

    @staticmethod
    def _undelivered(conn: sqlite3.Connection, ids: list[int]) -> list[int]:
        pending: list[int] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            pending += [
                r[0]
                for r in conn.execute(
                    # Only placeholders are formatted in; the ids are parameters.
                    f'SELECT id FROM "delivery" WHERE id IN ({marks}) '  # noqa: S608
                    "AND delivered_at IS NULL ORDER BY id",
                    chunk,
                )
            ]
        return sorted(pending)  # in id order, as deliveries_repo.mark_delivered reads them

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=True)

    async def _run(self, writes: Sequence[NoticeWrite], *, single: bool) -> None:
        await self._in_turn(self._commit, writes, single)

    async def _in_turn(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer's thread, in this process's write turn. The turn is held
        until the thread is done, even if the caller is cancelled meanwhile: the transaction
        runs on, and the next writer would meet its lock in SQLite's busy handler."""
        loop = asyncio.get_running_loop()
        async with write_turn(self.db) if self.db is not None else nullcontext():
            done = loop.run_in_executor(self._pool, fn, *args)
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                await asyncio.wait([done])
                if not done.cancelled():
                    done.exception()  # retrieved: the caller is gone, the error is the store's
                raise

    def _commit(self, writes: Sequence[NoticeWrite], single: bool) -> None:
        with raw_errors(self.db):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")  # the write lock, before the audit head is read
            try:
                self._write(conn, writes, single)
                conn.execute("COMMIT")  # returns once the WAL is on disk (synchronous=FULL)
            except BaseException:
                self._rollback(conn)
                raise

    def _write(self, conn: sqlite3.Connection, writes: Sequence[NoticeWrite], single: bool) -> None:
        conflict = BatchConflict if not single else None
        self._insert(conn, self._nonce, [w.nonce for w in writes], conflict or NonceReplayed)
        idempotency = [w.idempotency for w in writes if w.idempotency is not None]
        self._insert(conn, self._idempotency, idempotency, conflict or IdempotencyRace)
        self._insert(conn, self._notice, [w.notice for w in writes], conflict)
        self._insert(conn, self._wrap, [r for w in writes for r in w.wraps], conflict)
        self._insert(conn, self._delivery, [r for w in writes for r in w.deliveries], conflict)
        releases = [w.release for w in writes if w.release is not None]
        self._insert(conn, self._release, releases, conflict)
        cancels = [(w.cancels,) for w in writes if w.cancels is not None]
        if cancels:
            conn.executemany("UPDATE \"notice\" SET status = 'cancelled' WHERE id = ?", cancels)
        self._insert(conn, self._outbox, [r for w in writes for r in w.outbox], conflict)
        self._append(conn, [e for w in writes for e in w.audit], conflict)

    def _insert(
        self,
        conn: sqlite3.Connection,
        table: RawTable,
        rows: Sequence[dict[str, Any]],
        conflict: type[Exception] | None,
    ) -> None:
        try:
            for sql, params in table.statements(rows):
                conn.executemany(sql, params)
        except sqlite3.IntegrityError as e:
            if conflict is None:
                raise  # a conflict no one expects: an outage, as the boundary says
            raise conflict() from e

    def _append(
        self, conn: sqlite3.Connection, events: Sequence[Any], conflict: type[Exception] | None
    ) -> None:
        if not events:
            return
        size, last_leaf, frontier = conn.execute(
            "SELECT size, last_leaf, frontier FROM audit_head WHERE id = 1"
        ).fetchone()
        chained = audit_repo.chain(size, frontier, last_leaf, events)
        self._insert(conn, self._event, chained.rows, conflict)
        head = chained.head
        conn.execute(
            "UPDATE audit_head SET size = ?, last_leaf = ?, frontier = ? WHERE id = 1",
            (head["size"], head["last_leaf"], head["frontier"]),
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # Autocommit mode: this code says where each transaction begins and ends.
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            sqlite_pragmas(conn, None)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._conn = conn
        return self._conn

    def _rollback(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # the connection is broken: the next round opens a new one
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
