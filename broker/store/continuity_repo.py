"""Continuity: the (notice, role) pairs of active notices that nobody acknowledged through the role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from broker.store import Database
from broker.store.boundary import fetch_all
from broker.store.tables import DeliveryRow, NoticeRow

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
delivery_t = DeliveryRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Unacknowledged:
    notice_id: str
    role: str
    channel: str
    delivered_at: datetime  # the first delivery through the role
    exercise: str | None = None  # the notice's exercise or test marking


async def unacknowledged(db: Database) -> list[Unacknowledged]:
    """Active notices and the roles they reached that no one acknowledged them through."""
    query = (
        select(
            delivery_t.c.notice_id,
            delivery_t.c.role_id,
            notice_t.c.channel,
            notice_t.c.exercise,
            func.min(delivery_t.c.created_at).label("first"),
        )
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(notice_t.c.status == "active")
        .group_by(
            delivery_t.c.notice_id, delivery_t.c.role_id, notice_t.c.channel, notice_t.c.exercise
        )
        .having(func.max(delivery_t.c.acked_at).is_(None))
    )
    return [
        Unacknowledged(r.notice_id, r.role_id, r.channel, r.first, r.exercise)
        for r in await fetch_all(db, query)
    ]
