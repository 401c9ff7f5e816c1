"""The audit log in the database: append within the caller's transaction, read, checkpoint.

Appends lock the single ``audit_head`` row first (an UPDATE, which also takes SQLite's write
lock), so concurrent writers, in one process or many, get consecutive sequence numbers and a
consistent tree; the head and the events commit or roll back with the action they record.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.audit.checkpoint import Checkpoint
from broker.audit.events import AuditEvent, canonical
from broker.audit.merkle import CompactRange, leaf_hash
from broker.audit.visibility import EventPlace
from broker.store import Database
from broker.store.boundary import fetch_all, transaction
from broker.store.tables import (
    AuditCheckpointRow,
    AuditEventRow,
    AuditHeadRow,
    FederationCrossingRow,
    NoticeRow,
)

event_t = AuditEventRow.__table__  # type: ignore[attr-defined]
head_t = AuditHeadRow.__table__  # type: ignore[attr-defined]
checkpoint_t = AuditCheckpointRow.__table__  # type: ignore[attr-defined]
notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
crossing_t = FederationCrossingRow.__table__  # type: ignore[attr-defined]


async def lock_head(conn: AsyncConnection) -> None:
    """Take the audit head's row lock (on SQLite, the write lock) until the transaction ends.

    A transaction that creates deliveries takes it before inserting them, so delivery ids are
    given out in commit order, in one process or many: a live stream that has sent id N never
    later finds a smaller id committed (PostgreSQL's sequences alone do not promise that).
    """
    await conn.execute(update(head_t).where(head_t.c.id == 1).values(size=head_t.c.size))


async def append(conn: AsyncConnection, events: Sequence[AuditEvent]) -> list[int]:
    """Append ``events`` inside the caller's open transaction; returns their sequence numbers."""
    if not events:
        return []
    await lock_head(conn)  # first, before reading the head
    head = (await conn.execute(select(head_t).where(head_t.c.id == 1))).one()
    chained = chain(head.size, head.frontier, head.last_leaf, events)
    await conn.execute(insert(event_t), chained.rows)
    await conn.execute(update(head_t).where(head_t.c.id == 1).values(**chained.head))
    return [row["seq"] for row in chained.rows]


@dataclass(frozen=True, slots=True)
class Chained:
    """Events given their place in the log: their rows, and the head's new columns."""

    rows: list[dict[str, Any]]
    head: dict[str, Any]  # size, last_leaf, frontier


def chain(size: int, frontier: str, last_leaf: str, events: Sequence[AuditEvent]) -> Chained:
    """Place ``events`` after the head (size, frontier, last leaf) read under its lock: pure, so
    every writer (this module, the SQLite group writer) makes the same bytes."""
    tree = CompactRange.load(size, json.loads(frontier))
    prev = last_leaf
    rows: list[dict[str, Any]] = []
    for event in events:
        seq = tree.size + 1
        body = canonical(event, seq, prev)
        leaf = leaf_hash(body)
        tree.append(leaf)
        prev = leaf.hex()
        rows.append(
            {
                "seq": seq,
                "at": event.at,
                "actor": event.actor[:160],
                "action": event.action,
                "object": event.object[:200],
                "notice_id": event.notice_id,
                "channel": event.channel,
                "outcome": event.outcome,
                "body": body.decode(),
                "leaf": leaf,
            }
        )
    return Chained(
        rows, {"size": tree.size, "last_leaf": prev, "frontier": json.dumps(tree.dump())}
    )


async def append_events(db: Database, events: Sequence[AuditEvent]) -> list[int]:
    """Append events that go with no other write (refusals, reads) in their own transaction."""
    async with transaction(db) as conn:
        return await append(conn, events)


@dataclass(frozen=True)
class EventFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    notice: str | None = None
    channel: str | None = None
    # Events about exercise/test notices: "exercise", "test", or "none" (every event not about
    # a marked notice, so an auditor can leave exercises out). Read from the notice's column.
    exercise: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event as the auditors' API reads it: its bytes, its leaf, and what places it."""

    seq: int
    body: str
    leaf: bytes
    place: EventPlace


def _placed(conditions: list[Any]) -> Any:
    """Events joined to the jurisdiction of the notice they are about (if it exists), and to
    its sender when this broker forwarded it to a peer (broker/audit/visibility.py)."""
    joined = event_t.outerjoin(notice_t, notice_t.c.id == event_t.c.notice_id).outerjoin(
        crossing_t,
        and_(crossing_t.c.notice_id == event_t.c.notice_id, crossing_t.c.direction == "send"),
    )
    return (
        select(
            event_t.c.seq,
            event_t.c.body,
            event_t.c.leaf,
            event_t.c.actor,
            event_t.c.notice_id,
            notice_t.c.jurisdiction_id,
            notice_t.c.sender_id,
            crossing_t.c.direction,
        )
        .select_from(joined)
        .where(and_(*conditions))
        .order_by(event_t.c.seq)
    )


def _stored(row: Any) -> StoredEvent:
    about_notice = row.notice_id not in (None, "-")
    sent_abroad_by = row.sender_id if row.direction == "send" else None
    place = EventPlace(row.actor, row.jurisdiction_id, about_notice, sent_abroad_by)
    return StoredEvent(row.seq, row.body, bytes(row.leaf), place)


async def read_events(
    db: Database, where: EventFilter, *, after: int, limit: int
) -> list[StoredEvent]:
    """Matching events with seq > ``after``, in order, each with what places it."""
    conditions = [event_t.c.seq > after]
    for column, value in (
        (event_t.c.actor, where.actor),
        (event_t.c.action, where.action),
        (event_t.c.notice_id, where.notice),
        (event_t.c.channel, where.channel),
    ):
        if value is not None:
            conditions.append(column == value)
    if where.exercise == "none":
        conditions.append(notice_t.c.exercise.is_(None))
    elif where.exercise is not None:
        conditions.append(notice_t.c.exercise == where.exercise)
    if where.since is not None:
        conditions.append(event_t.c.at >= where.since)
    if where.until is not None:
        conditions.append(event_t.c.at < where.until)
    return [_stored(r) for r in await fetch_all(db, _placed(conditions).limit(limit))]


async def all_bodies(db: Database, *, batch: int = 5000) -> AsyncIterator[str]:
    """Every event's canonical body in order, in batches (for export)."""
    after = 0
    while True:
        rows = await fetch_all(
            db,
            select(event_t.c.seq, event_t.c.body)
            .where(event_t.c.seq > after)
            .order_by(event_t.c.seq)
            .limit(batch),
        )
        if not rows:
            return
        for row in rows:
            yield row.body
        after = rows[-1].seq


async def leaves(db: Database, size: int) -> list[bytes]:
    rows = await fetch_all(
        db, select(event_t.c.leaf).where(event_t.c.seq <= size).order_by(event_t.c.seq)
    )
    return [bytes(r.leaf) for r in rows]


async def event_leaf(db: Database, seq: int) -> StoredEvent | None:
    rows = await fetch_all(db, _placed([event_t.c.seq == seq]))
    return _stored(rows[0]) if rows else None


async def size(db: Database) -> int:
    rows = await fetch_all(db, select(head_t.c.size).where(head_t.c.id == 1))
    return int(rows[0].size) if rows else 0


async def create_checkpoint(
    db: Database, origin: str, sign: Callable[[str], str], now: datetime
) -> tuple[int, str]:
    """Sign the tree as it stands (holding the append lock), unless that size is signed already."""
    async with transaction(db) as conn:
        await conn.execute(update(head_t).where(head_t.c.id == 1).values(size=head_t.c.size))
        head = (await conn.execute(select(head_t).where(head_t.c.id == 1))).one()
        existing = (
            await conn.execute(select(checkpoint_t.c.note).where(checkpoint_t.c.size == head.size))
        ).first()
        if existing is not None:
            return int(head.size), str(existing.note)
        root = CompactRange.load(head.size, json.loads(head.frontier)).root()
        note = sign(Checkpoint(origin, head.size, root).text())
        await conn.execute(
            insert(checkpoint_t).values(size=head.size, root=root, note=note, created_at=now)
        )
        return int(head.size), note


async def checkpoint_page(db: Database, *, after: int, limit: int) -> list[tuple[int, str, Any]]:
    """(size, note, signed at) of the checkpoints with size > ``after``, smallest first."""
    rows = await fetch_all(
        db,
        select(checkpoint_t.c.size, checkpoint_t.c.note, checkpoint_t.c.created_at)
        .where(checkpoint_t.c.size > after)
        .order_by(checkpoint_t.c.size)
        .limit(limit),
    )
    return [(int(r.size), str(r.note), r.created_at) for r in rows]


async def other_origins(db: Database, origin: str) -> list[str]:
    """The origins (first lines) of checkpoints signed under a name other than ``origin``,
    by size: the log's earlier names, when ``audit.origin`` was changed."""
    rows = await fetch_all(
        db,
        select(checkpoint_t.c.note)
        .where(~checkpoint_t.c.note.startswith(origin + "\n", autoescape=True))
        .order_by(checkpoint_t.c.size),
    )
    return list(dict.fromkeys(str(r.note).partition("\n")[0] for r in rows))


async def checkpoints(db: Database) -> list[tuple[int, str]]:
    rows = await fetch_all(
        db, select(checkpoint_t.c.size, checkpoint_t.c.note).order_by(checkpoint_t.c.size)
    )
    return [(r.size, r.note) for r in rows]
