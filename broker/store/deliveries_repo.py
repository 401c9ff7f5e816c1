"""A recipient's side of a notice: their deliveries, what they may fetch, read and acknowledge.

A delivery's state only moves forward (pending, delivered, read; then acknowledged or
escalated), and each step is recorded once, with its audit events in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update

from broker.audit.events import AuditEvent
from broker.domain.notice import DeliveryState, NoticeFacts
from broker.store import Database, audit_repo
from broker.store.boundary import fetch_all, fetch_first, transaction, write_turn
from broker.store.intake_repo import reply_to_role_of
from broker.store.tables import DeliveryRow, NoticeRow, ReplyRow, WrapRow

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
wrap_t = WrapRow.__table__  # type: ignore[attr-defined]
delivery_t = DeliveryRow.__table__  # type: ignore[attr-defined]
reply_t = ReplyRow.__table__  # type: ignore[attr-defined]


async def deliveries_of(db: Database, notice_id: str) -> list[DeliveryState]:
    rows = await fetch_all(
        db, select(delivery_t).where(delivery_t.c.notice_id == notice_id).order_by(delivery_t.c.id)
    )
    return [
        DeliveryState(
            r.contact_id,
            r.role_id,
            r.jurisdiction_id,
            r.rule,
            r.deputy,
            r.state,
            r.created_at,
            r.delivered_at,
            r.read_at,
            r.acked_at,
            r.escalated_at,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class InboxItem:
    delivery_id: int
    contact: str
    notice_id: str
    role: str
    state: str
    delivered_at: datetime | None
    acked_at: datetime | None
    channel: str
    jurisdiction: str
    severity: str
    marking: str
    kind: str
    status: str
    supersedes: str | None
    sender: str
    created_at: datetime
    exercise: str | None = None
    addressees: tuple[str, ...] = ()
    reply_to_role: str | None = None

    def facts(self) -> NoticeFacts:
        """What policy sees of the notice: every fact intake decided on (a read decided on
        fewer would let a policy on addressees or the asking role hold at routing only)."""
        return NoticeFacts(
            self.channel,
            self.jurisdiction,
            self.severity,
            self.sender,
            id=self.notice_id,
            addressees=self.addressees,
            reply_to_role=self.reply_to_role,
            exercise=self.exercise,
        )


_INBOX_COLUMNS = [
    delivery_t.c.id,
    delivery_t.c.contact_id,
    delivery_t.c.notice_id,
    delivery_t.c.role_id,
    delivery_t.c.state,
    delivery_t.c.delivered_at,
    delivery_t.c.acked_at,
    notice_t.c.channel,
    notice_t.c.jurisdiction_id,
    notice_t.c.severity,
    notice_t.c.marking,
    notice_t.c.kind,
    notice_t.c.status,
    notice_t.c.supersedes_id,
    notice_t.c.sender_id,
    notice_t.c.created_at,
    notice_t.c.exercise,
    notice_t.c.addressees,
    reply_to_role_of(notice_t),
]


def _inbox_item(r: Any) -> InboxItem:
    return InboxItem(
        r.id,
        r.contact_id,
        r.notice_id,
        r.role_id,
        r.state,
        r.delivered_at,
        r.acked_at,
        r.channel,
        r.jurisdiction_id,
        r.severity,
        r.marking,
        r.kind,
        r.status,
        r.supersedes_id,
        r.sender_id,
        r.created_at,
        r.exercise,
        tuple(json.loads(r.addressees)),
        r.reply_to_role,
    )


async def inbox(
    db: Database,
    contact: str,
    *,
    before: int | None,
    limit: int,
    state: str | None = None,
    channel: str | None = None,
) -> list[InboxItem]:
    """The contact's deliveries, newest first, joined with their notices' metadata."""
    query = (
        select(*_INBOX_COLUMNS)
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(delivery_t.c.contact_id == contact)
    )
    if before is not None:
        query = query.where(delivery_t.c.id < before)
    if state is not None:
        query = query.where(delivery_t.c.state == state)
    if channel is not None:
        query = query.where(notice_t.c.channel == channel)
    return [
        _inbox_item(r)
        for r in await fetch_all(db, query.order_by(delivery_t.c.id.desc()).limit(limit))
    ]


async def deliveries_after(db: Database, contact: str, after: int, limit: int) -> list[InboxItem]:
    """The contact's deliveries with an id above ``after``, oldest first (stream resume)."""
    query = (
        select(*_INBOX_COLUMNS)
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(and_(delivery_t.c.contact_id == contact, delivery_t.c.id > after))
        .order_by(delivery_t.c.id)
        .limit(limit)
    )
    return [_inbox_item(r) for r in await fetch_all(db, query)]


async def deliveries_after_each(
    db: Database, starts: Sequence[tuple[str, int]], limit: int
) -> list[list[InboxItem]]:
    """``deliveries_after(contact, after, limit)`` for each (contact, after) of ``starts``, in
    order, in one query per ``BACKLOG_CHUNK`` distinct contacts (streams opening together).

    Each contact's threshold is chosen by a CASE on the contact and its rows numbered by a
    window, so every answer is exactly the one-contact query's; a contact named twice (two
    streams at different positions) goes in a later query, never with a shared threshold."""
    answers: list[list[InboxItem]] = [[] for _ in starts]
    for chunk in _one_per_contact(starts, BACKLOG_CHUNK):
        after = {starts[k][0]: starts[k][1] for k in chunk}
        # The CASE has a power of two of branches (the last repeated: the same answer), so at
        # most nine statement shapes reach SQLAlchemy's compiled cache, not one per count.
        branches = list(after.items())
        branches += branches[-1:] * ((1 << (len(branches) - 1).bit_length()) - len(branches))
        numbered = (
            select(
                *_INBOX_COLUMNS,
                func.row_number()
                .over(partition_by=delivery_t.c.contact_id, order_by=delivery_t.c.id)
                .label("position"),
            )
            .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
            .where(
                delivery_t.c.contact_id.in_(list(after)),
                delivery_t.c.id > case(*((delivery_t.c.contact_id == c, a) for c, a in branches)),
            )
            .subquery()
        )
        query = select(numbered).where(numbered.c.position <= limit).order_by(numbered.c.id)
        found: dict[str, list[InboxItem]] = {}
        for r in await fetch_all(db, query):
            found.setdefault(r.contact_id, []).append(_inbox_item(r))
        for k in chunk:
            answers[k] = found.get(starts[k][0], [])
    return answers


BACKLOG_CHUNK = 256  # contacts per backlog query: three bound values each, well within limits


def _one_per_contact(starts: Sequence[tuple[str, int]], size: int) -> list[list[int]]:
    """Indexes of ``starts`` in chunks of at most ``size``, no contact twice in one chunk."""
    chunks: list[list[int]] = []
    seen: list[set[str]] = []
    for k, (contact, _) in enumerate(starts):
        for chunk, contacts in zip(chunks, seen, strict=True):
            if contact not in contacts and len(chunk) < size:
                chunk.append(k)
                contacts.add(contact)
                break
        else:
            chunks.append([k])
            seen.append({contact})
    return chunks


async def deliveries_since(db: Database, after: int, limit: int) -> list[InboxItem]:
    """Every contact's deliveries with an id above ``after``, oldest first (push on SQLite
    served by several processes: ids are given out in commit order, so this is a gap-free tail)."""
    query = (
        select(*_INBOX_COLUMNS)
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(delivery_t.c.id > after)
        .order_by(delivery_t.c.id)
        .limit(limit)
    )
    return [_inbox_item(r) for r in await fetch_all(db, query)]


async def last_delivery_id(db: Database) -> int:
    """The highest delivery id committed so far (0 before the first)."""
    row = await fetch_first(db, select(func.max(delivery_t.c.id)))
    return int(row[0] or 0) if row is not None else 0


async def deliveries_named(
    db: Database, notice_ids: Sequence[str], ids: Sequence[int]
) -> list[InboxItem]:
    """Every delivery of ``notice_ids`` and those with ``ids``, in id order, in one query."""
    named = []
    if notice_ids:
        named.append(delivery_t.c.notice_id.in_(list(notice_ids)))
    if ids:
        named.append(delivery_t.c.id.in_(list(ids)))
    if not named:
        return []
    query = (
        select(*_INBOX_COLUMNS)
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(or_(*named))
        .order_by(delivery_t.c.id)
    )
    return [_inbox_item(r) for r in await fetch_all(db, query)]


async def recipient_copy(
    db: Database, notice_id: str, contact: str
) -> tuple[dict[str, Any], list[InboxItem], tuple[str, bytes] | None] | None:
    """What one recipient may fetch: the notice row, their deliveries of it, and their wrap."""
    row = await fetch_first(db, select(notice_t).where(notice_t.c.id == notice_id))
    if row is None:
        return None
    query = (
        select(*_INBOX_COLUMNS)
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(and_(delivery_t.c.notice_id == notice_id, delivery_t.c.contact_id == contact))
    )
    deliveries = [_inbox_item(r) for r in await fetch_all(db, query)]
    wrap = await fetch_first(
        db,
        select(wrap_t.c.key_id, wrap_t.c.wrap).where(
            and_(wrap_t.c.notice_id == notice_id, wrap_t.c.recipient_id == contact)
        ),
    )
    return (
        dict(row._mapping),
        deliveries,
        (wrap.key_id, bytes(wrap.wrap)) if wrap is not None else None,
    )


async def mark_delivered(
    db: Database,
    ids: Sequence[int],
    now: datetime,
    events_for: Callable[[list[int]], Sequence[AuditEvent]] = lambda _: (),
) -> list[int]:
    """Mark deliveries delivered (once); ``events_for`` records the ones that changed."""
    if not ids:
        return []
    async with write_turn(db), transaction(db) as conn:
        pending = [
            r.id
            for r in (
                await conn.execute(
                    select(delivery_t.c.id)
                    .where(
                        and_(delivery_t.c.id.in_(list(ids)), delivery_t.c.delivered_at.is_(None))
                    )
                    .order_by(delivery_t.c.id)  # the events' order, on every backend
                )
            ).all()
        ]
        if not pending:
            return []
        await conn.execute(
            update(delivery_t)
            .where(and_(delivery_t.c.id.in_(pending), delivery_t.c.delivered_at.is_(None)))
            .values(delivered_at=now, state=_advance("delivered"))
        )
        await audit_repo.append(conn, events_for(pending))
        return pending


async def mark_read(
    db: Database, notice_id: str, contact: str, now: datetime, audit: Sequence[AuditEvent] = ()
) -> None:
    where = and_(delivery_t.c.notice_id == notice_id, delivery_t.c.contact_id == contact)
    async with transaction(db) as conn:
        await conn.execute(
            update(delivery_t)
            .where(and_(where, delivery_t.c.delivered_at.is_(None)))
            .values(delivered_at=now)
        )
        await conn.execute(
            update(delivery_t)
            .where(and_(where, delivery_t.c.read_at.is_(None)))
            .values(read_at=now, state=_advance("read"))
        )
        await audit_repo.append(conn, audit)


def _advance(to: str) -> Any:
    """Move state forward only: acknowledged and escalated are never overwritten by read/delivered."""
    order = ["pending", "delivered", "read"]
    return case((delivery_t.c.state.in_(order[: order.index(to)]), to), else_=delivery_t.c.state)


async def acknowledge(
    db: Database,
    notice_id: str,
    contact: str,
    signature: str,
    now: datetime,
    reply: dict[str, Any] | None,
    audit: Sequence[AuditEvent] = (),
) -> int:
    """Record the contact's signed acknowledgement (and reply) once; returns deliveries changed."""
    where = and_(
        delivery_t.c.notice_id == notice_id,
        delivery_t.c.contact_id == contact,
        delivery_t.c.acked_at.is_(None),
    )
    async with transaction(db) as conn:
        changed = (
            await conn.execute(
                update(delivery_t)
                .where(where)
                .values(
                    acked_at=now,
                    state="acknowledged",
                    ack_signature=signature,
                    read_at=func.coalesce(delivery_t.c.read_at, now),
                    delivered_at=func.coalesce(delivery_t.c.delivered_at, now),
                )
            )
        ).rowcount or 0
        if changed and reply is not None:
            await conn.execute(insert(reply_t), [reply])
        if changed:
            await audit_repo.append(conn, audit)
        return int(changed)


async def replies_of(db: Database, notice_id: str) -> list[dict[str, Any]]:
    rows = await fetch_all(
        db, select(reply_t).where(reply_t.c.notice_id == notice_id).order_by(reply_t.c.id)
    )
    return [dict(r._mapping) for r in rows]
