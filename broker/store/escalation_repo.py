"""Escalation and succession: open deliveries, who holds a role for a notice, adding recipients.

``add_recipients`` escalates a delivery at most once: the sources it marks must all still be
open when its transaction runs, or it changes nothing (a concurrent run, in this process or
another, already did it or someone acknowledged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, false, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.audit.events import AuditEvent
from broker.store import Database, audit_repo, outbox_repo
from broker.store.boundary import fetch_all, transaction
from broker.store.listener import notify
from broker.store.tables import DeliveryRow, NoticeRow, WrapRow

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
wrap_t = WrapRow.__table__  # type: ignore[attr-defined]
delivery_t = DeliveryRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class OpenDelivery:
    id: int
    notice_id: str
    contact: str
    role: str
    jurisdiction: str
    level: int
    created_at: datetime
    channel: str
    acked_role: bool  # someone acknowledged this notice through this role


def _acked_sibling() -> Any:
    """Someone acknowledged the outer delivery's notice through the outer delivery's role (an
    index probe per row on ``notice_id``, where a join to every acknowledged pair read them all
    each tick: 0.66 s for 200,000 acknowledged notices on SQLite, for no open work)."""
    sibling = delivery_t.alias("acked")
    return exists().where(
        sibling.c.notice_id == delivery_t.c.notice_id,
        sibling.c.role_id == delivery_t.c.role_id,
        sibling.c.acked_at.is_not(None),
    )


async def open_deliveries(
    db: Database, channels: Sequence[str], due: Mapping[str, tuple[datetime, int]] | None = None
) -> list[OpenDelivery]:
    """Deliveries of active notices on ``channels`` not yet acknowledged or escalated. An
    exercise or test notice is never among them: it does not escalate beyond the roles it was
    routed to (the continuity report counts it overdue apart). ``due``: channel -> (created at
    or before, level below) — only deliveries past their channel's deadline with a level left
    in its chain, whose role no one acknowledged (what the escalation tick acts on)."""
    if not channels:
        return []
    query = (
        select(
            delivery_t.c.id,
            delivery_t.c.notice_id,
            delivery_t.c.contact_id,
            delivery_t.c.role_id,
            delivery_t.c.jurisdiction_id,
            delivery_t.c.escalation_level,
            delivery_t.c.created_at,
            notice_t.c.channel,
            _acked_sibling().label("acked_role"),
        )
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(
            and_(
                notice_t.c.status == "active",
                notice_t.c.channel.in_(list(channels)),
                notice_t.c.exercise.is_(None),
                delivery_t.c.acked_at.is_(None),
                delivery_t.c.escalated_at.is_(None),
            )
        )
        .order_by(delivery_t.c.id)
    )
    if due is not None:
        query = query.where(
            or_(
                *(
                    and_(
                        notice_t.c.channel == channel,
                        delivery_t.c.created_at <= before,
                        delivery_t.c.escalation_level < levels,
                    )
                    for channel, (before, levels) in due.items()
                    if channel in channels
                ),
                false(),
            ),
            ~_acked_sibling(),
        )
    return [
        OpenDelivery(
            r.id,
            r.notice_id,
            r.contact_id,
            r.role_id,
            r.jurisdiction_id,
            r.escalation_level,
            r.created_at,
            r.channel,
            bool(r.acked_role),
        )
        for r in await fetch_all(db, query)
    ]


async def role_holders_of_open_notices(db: Database) -> dict[tuple[str, str], set[str]]:
    """(notice, role) -> contacts with a delivery, for active notices no one acknowledged via
    that role. Every delivery of such a pair is unacknowledged, so only those are read."""
    query = (
        select(delivery_t.c.notice_id, delivery_t.c.role_id, delivery_t.c.contact_id)
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(
            notice_t.c.status == "active",
            delivery_t.c.acked_at.is_(None),
            ~_acked_sibling(),
        )
    )
    result: dict[tuple[str, str], set[str]] = {}
    for r in await fetch_all(db, query):
        result.setdefault((r.notice_id, r.role_id), set()).add(r.contact_id)
    return result


async def add_recipients(
    db: Database,
    *,
    notice_id: str,
    deliveries: list[dict[str, Any]],
    wraps: list[dict[str, Any]],
    escalated: Sequence[int],
    now: datetime,
    audit: Sequence[AuditEvent] = (),
    outbox: Sequence[dict[str, Any]] = (),
) -> list[int]:
    """Add deliveries (and wraps not yet there) in one transaction; mark ``escalated`` sources.

    A source already escalated or acknowledged by a concurrent run makes the whole step a no-op,
    so a delivery is escalated once. Returns the new delivery ids.
    """
    try:
        async with transaction(db) as conn:
            if escalated:
                await _mark_escalated(conn, escalated, now)
            await _add_missing_wraps(conn, notice_id, wraps)
            await audit_repo.lock_head(conn)  # delivery ids in commit order
            ids = await _insert_deliveries(conn, deliveries)
            if ids:
                await outbox_repo.add(conn, outbox)
                await audit_repo.append(conn, audit)
                for start in range(0, len(ids), 500):  # NOTIFY payloads are capped at 8000 bytes
                    await notify(conn, {"deliveries": ids[start : start + 500]})
            return ids
    except _Skip:
        return []


class _Skip(Exception):
    """A source was no longer open: roll the whole step back."""


async def _mark_escalated(conn: AsyncConnection, escalated: Sequence[int], now: datetime) -> None:
    changed = (
        await conn.execute(
            update(delivery_t)
            .where(
                and_(
                    delivery_t.c.id.in_(list(escalated)),
                    delivery_t.c.escalated_at.is_(None),
                    delivery_t.c.acked_at.is_(None),
                )
            )
            .values(escalated_at=now, state="escalated")
        )
    ).rowcount
    if changed != len(escalated):
        raise _Skip()


async def _add_missing_wraps(
    conn: AsyncConnection, notice_id: str, wraps: list[dict[str, Any]]
) -> None:
    existing = {
        r.recipient_id
        for r in (
            await conn.execute(select(wrap_t.c.recipient_id).where(wrap_t.c.notice_id == notice_id))
        ).all()
    }
    new_wraps = [w for w in wraps if w["recipient_id"] not in existing]
    if new_wraps:
        await conn.execute(insert(wrap_t), new_wraps)


async def _insert_deliveries(conn: AsyncConnection, deliveries: list[dict[str, Any]]) -> list[int]:
    ids = []
    for delivery in deliveries:
        try:
            async with conn.begin_nested():
                result = await conn.execute(insert(delivery_t).values(**delivery))
                key = result.inserted_primary_key
                if key is not None:
                    ids.append(int(key[0]))
        except IntegrityError:
            continue  # that recipient already has it through that role
    return ids
