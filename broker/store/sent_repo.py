"""An agency's own notices, newest first: the agency view's list (``GET /v1/notices``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select

from broker.domain.notice import StoredNotice
from broker.store import Database
from broker.store.boundary import fetch_all
from broker.store.intake_repo import _META, _stored
from broker.store.tables import NoticeRow, ReplyRow

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
reply_t = ReplyRow.__table__  # type: ignore[attr-defined]


async def sent_by(
    db: Database, sender: str, *, before: tuple[datetime, str] | None, limit: int
) -> list[StoredNotice]:
    """Up to ``limit`` notices of ``sender``, newest first, strictly after the cursor
    ``before`` (the created_at and id of the last notice of the previous page)."""
    query = select(*_META).where(notice_t.c.sender_id == sender)
    if before is not None:
        at, notice_id = before
        query = query.where(
            or_(
                notice_t.c.created_at < at,
                and_(notice_t.c.created_at == at, notice_t.c.id < notice_id),
            )
        )
    query = query.order_by(notice_t.c.created_at.desc(), notice_t.c.id.desc()).limit(limit)
    return [_stored(r) for r in await fetch_all(db, query)]


async def reply_counts(db: Database, notice_ids: list[str]) -> dict[str, int]:
    if not notice_ids:
        return {}
    rows = await fetch_all(
        db,
        select(reply_t.c.notice_id, func.count())
        .where(reply_t.c.notice_id.in_(notice_ids))
        .group_by(reply_t.c.notice_id),
    )
    return {r[0]: int(r[1]) for r in rows}
