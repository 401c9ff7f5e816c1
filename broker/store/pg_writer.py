"""The group commit on PostgreSQL with asyncpg's ``executemany``, not SQLAlchemy's statement
building: one statement per table per round, inside a transaction the engine opens and ends.

Invariants:
- the rows are those ``intake_repo.commit_notices`` writes (``raw_rows.RawTable``: the columns,
  defaults and bind processors of the SQLAlchemy tables on the asyncpg dialect; the audit rows
  from ``audit_repo.chain``), compared row by row in tests/integration/test_raw_commit.py;
- the first statement is ``audit_repo.lock_head`` through the engine: it opens the transaction
  on the pooled connection and takes the audit head's row lock, so delivery ids and audit
  sequence numbers are given out in commit order across broker processes (test_scaleout.py);
  the raw statements then run on that same connection, in that transaction;
- the deliveries' ``pg_notify`` is queued in the transaction, so it is sent only if it commits;
- a conflict in a batch is ``BatchConflict`` (the engine rolls back: nothing stored), alone it is
  ``NonceReplayed`` or ``IdempotencyRace``; any other driver error is ``StoreUnavailable`` with
  the driver's error as its cause (``boundary.raw_errors``, inside ``boundary.transaction``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from broker.audit.events import AuditEvent
from broker.store import Database, audit_repo, deliveries_repo, intake_repo, outbox_repo
from broker.store.boundary import raw_errors, transaction
from broker.store.intake_repo import BatchConflict, IdempotencyRace, NonceReplayed, NoticeWrite
from broker.store.listener import CHANNEL
from broker.store.raw_rows import RawTable


class AsyncpgGroupWriter:
    """``commit_notices`` / ``commit_notice`` for PostgreSQL through the engine's asyncpg pool."""

    def __init__(self, db: Database) -> None:
        self.db = db
        dialect = db.dialect
        self._notice = RawTable(intake_repo.notice_t, dialect, numbered=True)
        self._wrap = RawTable(intake_repo.wrap_t, dialect, numbered=True)
        self._delivery = RawTable(intake_repo.delivery_t, dialect, numbered=True)
        self._release = RawTable(intake_repo.release_t, dialect, numbered=True)  # held notices
        self._nonce = RawTable(intake_repo.nonce_t, dialect, numbered=True)
        self._idempotency = RawTable(intake_repo.idempotency_t, dialect, numbered=True)
        # The outbox skips a message that exists already, as ``outbox_repo.add`` does.
        self._outbox = RawTable(outbox_repo.outbox_t, dialect, or_ignore=True, numbered=True)
        self._event = RawTable(audit_repo.event_t, dialect, numbered=True)

    async def commit_notices(self, writes: Sequence[NoticeWrite]) -> None:
        """All of ``writes`` in one transaction, or ``BatchConflict`` and nothing stored."""
        await self._commit(writes, single=False)

    async def commit_notice(self, write: NoticeWrite) -> None:
        """One notice alone: ``NonceReplayed`` / ``IdempotencyRace`` name a conflict."""
        await self._commit([write], single=True)

    async def mark_delivered(
        self,
        ids: Sequence[int],
        now: datetime,
        events_for: Callable[[list[int]], Sequence[AuditEvent]],
    ) -> list[int]:
        """The engine's statements: row locks, no busy handler to keep out of."""
        return await deliveries_repo.mark_delivered(self.db, ids, now, events_for)

    async def close(self) -> None:
        return None  # the connections are the engine's

    async def _commit(self, writes: Sequence[NoticeWrite], *, single: bool) -> None:
        async with transaction(self.db) as conn:
            await audit_repo.lock_head(conn)  # opens the transaction; delivery ids in commit order
            raw = (await conn.get_raw_connection()).driver_connection
            with raw_errors(self.db):
                await self._write(raw, writes, single)

    async def _write(
        self, raw: asyncpg.Connection, writes: Sequence[NoticeWrite], single: bool
    ) -> None:
        conflict = BatchConflict if not single else None
        await _insert(raw, self._nonce, [w.nonce for w in writes], conflict or NonceReplayed)
        idempotency = [w.idempotency for w in writes if w.idempotency is not None]
        await _insert(raw, self._idempotency, idempotency, conflict or IdempotencyRace)
        await _insert(raw, self._notice, [w.notice for w in writes], conflict)
        await _insert(raw, self._wrap, [r for w in writes for r in w.wraps], conflict)
        await _insert(raw, self._delivery, [r for w in writes for r in w.deliveries], conflict)
        releases = [w.release for w in writes if w.release is not None]
        await _insert(raw, self._release, releases, conflict)
        cancels = [(w.cancels,) for w in writes if w.cancels is not None]
        if cancels:
            await raw.executemany("UPDATE notice SET status = 'cancelled' WHERE id = $1", cancels)
        await _insert(raw, self._outbox, [r for w in writes for r in w.outbox], conflict)
        await self._append(raw, [e for w in writes for e in w.audit], conflict)
        notices = [(CHANNEL, json.dumps({"notice": w.notice["id"]})) for w in writes]
        await raw.executemany("SELECT pg_notify($1, $2)", notices)

    async def _append(
        self,
        raw: asyncpg.Connection,
        events: Sequence[AuditEvent],
        conflict: type[Exception] | None,
    ) -> None:
        if not events:
            return
        head = await raw.fetchrow("SELECT size, last_leaf, frontier FROM audit_head WHERE id = 1")
        chained = audit_repo.chain(head["size"], head["frontier"], head["last_leaf"], events)
        await _insert(raw, self._event, chained.rows, conflict)
        new = chained.head
        await raw.execute(
            "UPDATE audit_head SET size = $1, last_leaf = $2, frontier = $3 WHERE id = 1",
            new["size"],
            new["last_leaf"],
            new["frontier"],
        )


async def _insert(
    raw: asyncpg.Connection,
    table: RawTable,
    rows: Sequence[dict[str, Any]],
    conflict: type[Exception] | None,
) -> None:
    try:
        for sql, params in table.statements(rows):
            await raw.executemany(sql, params)
    except asyncpg.IntegrityConstraintViolationError as e:
        if conflict is None:
            raise  # a conflict no one expects: an outage, as the boundary says
        raise conflict() from e
