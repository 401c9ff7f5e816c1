"""Which writer a group commit goes through (intake's notices, live push's "delivered" marks):
a raw one where there is one, else the engine's.

``SqliteGroupWriter`` (a thread owning a raw ``sqlite3`` connection) for a SQLite file,
``AsyncpgGroupWriter`` (asyncpg ``executemany`` inside the engine's transaction) for PostgreSQL,
``EngineWriter`` (``intake_repo``'s SQLAlchemy statements, the reference the others are tested
against) for anything else, such as an in-memory SQLite database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from broker.audit.events import AuditEvent
from broker.store import Database, deliveries_repo, intake_repo
from broker.store.intake_repo import NoticeWrite
from broker.store.pg_writer import AsyncpgGroupWriter
from broker.store.sqlite_writer import SqliteGroupWriter

EventsFor = Callable[[list[int]], Sequence[AuditEvent]]


class GroupWriter(Protocol):
    """What the group commits write through: intake's (``service.group_commit.CommitBatcher``)
    and live push's "delivered" marks (``service.live.DeliveredMarks``), each its own writer."""

    async def commit_notices(self, writes: Sequence[NoticeWrite]) -> None: ...
    async def commit_notice(self, write: NoticeWrite) -> None: ...
    async def mark_delivered(
        self, ids: Sequence[int], now: datetime, events_for: EventsFor
    ) -> list[int]: ...
    async def close(self) -> None: ...


class EngineWriter:
    """The group commits through the engine (in-memory SQLite and the like): ``intake_repo``'s
    and ``deliveries_repo``'s statements."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def commit_notices(self, writes: Sequence[NoticeWrite]) -> None:
        await intake_repo.commit_notices(self.db, writes)

    async def commit_notice(self, write: NoticeWrite) -> None:
        await intake_repo.commit_notice(self.db, write)

    async def mark_delivered(
        self, ids: Sequence[int], now: datetime, events_for: EventsFor
    ) -> list[int]:
        return await deliveries_repo.mark_delivered(self.db, ids, now, events_for)

    async def close(self) -> None:
        return None


def group_writer(db: Database) -> GroupWriter:
    """The raw writer for this database, or the engine's statements where there is none."""
    url = db.url
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not url.query:  # a plain file, as Settings gives it
        return SqliteGroupWriter(path, db.dialect, db=db)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        return AsyncpgGroupWriter(db)
    return EngineWriter(db)
