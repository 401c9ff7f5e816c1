"""The outbox: webhook calls and e-mail alerts waiting to be made, claimed by one worker at a time.

Rows are written in the transaction of the deliveries they announce. A worker claims due rows by
pushing their next attempt into the future (with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several broker processes never claim the same row), sends outside any transaction, then records
the outcome and its audit event together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.audit.events import AuditEvent
from broker.store import Database, audit_repo
from broker.store.boundary import connection, transaction
from broker.store.tables import OutboxRow, WebhookDisabledRow

outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]
disabled_t = WebhookDisabledRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class OutboxItem:
    id: int
    notice_id: str
    contact_id: str | None
    kind: str
    target: str
    msg_id: str
    attempts: int


async def add(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert outbox rows in the caller's transaction, skipping messages that already exist."""
    added = 0
    for row in rows:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(outbox_t).values(**row))
                added += 1
        except IntegrityError:
            continue
    return added


async def claim(db: Database, now: datetime, *, limit: int, lease: timedelta) -> list[OutboxItem]:
    async with transaction(db) as conn:
        query = (
            select(outbox_t)
            .where(and_(outbox_t.c.state == "pending", outbox_t.c.next_attempt_at <= now))
            .order_by(outbox_t.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (await conn.execute(query)).all()
        if rows:
            await conn.execute(
                update(outbox_t)
                .where(outbox_t.c.id.in_([r.id for r in rows]))
                .values(next_attempt_at=now + lease)
            )
        return [
            OutboxItem(r.id, r.notice_id, r.contact_id, r.kind, r.target, r.msg_id, r.attempts)
            for r in rows
        ]


async def finish(
    db: Database,
    item: OutboxItem,
    *,
    state: str,
    attempts: int,
    next_at: datetime,
    error: str | None,
    now: datetime,
    events: Sequence[AuditEvent],
    disable: tuple[str, str] | None = None,
) -> None:
    async with transaction(db) as conn:
        await conn.execute(
            update(outbox_t)
            .where(outbox_t.c.id == item.id)
            .values(
                state=state,
                attempts=attempts,
                next_attempt_at=next_at,
                last_error=(error or None) and error[:300],
                sent_at=now if state == "sent" else None,
            )
        )
        if disable is not None:
            exists = (
                await conn.execute(
                    select(disabled_t.c.endpoint_id).where(disabled_t.c.endpoint_id == disable[0])
                )
            ).first()
            if exists is None:
                await conn.execute(
                    insert(disabled_t).values(
                        endpoint_id=disable[0], url=disable[1], disabled_at=now
                    )
                )
        await audit_repo.append(conn, events)


async def disabled_endpoints(db: Database) -> dict[str, str]:
    async with connection(db) as conn:
        rows = (await conn.execute(select(disabled_t.c.endpoint_id, disabled_t.c.url))).all()
    return {r.endpoint_id: r.url for r in rows}


async def items(db: Database, notice_id: str) -> list[dict[str, Any]]:
    async with connection(db) as conn:
        rows = (
            await conn.execute(
                select(outbox_t).where(outbox_t.c.notice_id == notice_id).order_by(outbox_t.c.id)
            )
        ).all()
    return [dict(r._mapping) for r in rows]


# -- dead letters: what the operator lists, replays and drops (``liaison outbox``) ---------------


@dataclass(frozen=True)
class DeadLetter:
    id: int
    notice_id: str
    kind: str
    target: str  # endpoint id, or e-mail address: untrusted text (the directory's)
    msg_id: str
    attempts: int
    last_error: str | None
    since: datetime  # when it was dead-lettered (its last attempt)


def _dead_letter(row: Any) -> DeadLetter:
    return DeadLetter(
        row.id,
        row.notice_id,
        row.kind,
        row.target,
        row.msg_id,
        row.attempts,
        row.last_error,
        row.next_attempt_at,  # set to the time of settling when a row goes dead
    )


async def dead_letters(db: Database) -> list[DeadLetter]:
    """Every dead-lettered message, oldest first."""
    async with connection(db) as conn:
        rows = (
            await conn.execute(
                select(outbox_t)
                .where(outbox_t.c.state == "dead")
                .order_by(outbox_t.c.next_attempt_at, outbox_t.c.id)
            )
        ).all()
    return [_dead_letter(r) for r in rows]


async def dead_letter(db: Database, outbox_id: int) -> DeadLetter | None:
    async with connection(db) as conn:
        row = (
            await conn.execute(
                select(outbox_t).where(and_(outbox_t.c.id == outbox_id, outbox_t.c.state == "dead"))
            )
        ).first()
    return None if row is None else _dead_letter(row)


async def requeue_dead(
    db: Database, outbox_id: int, now: datetime, events: Sequence[AuditEvent]
) -> bool:
    """Make a dead letter due again, with a fresh count of attempts and its own message id (so a
    receiver that got an earlier attempt after all can tell it is the same message); the audit
    events commit with it. False when it is no longer dead (replayed or dropped meanwhile)."""
    async with transaction(db) as conn:
        done = await conn.execute(
            update(outbox_t)
            .where(and_(outbox_t.c.id == outbox_id, outbox_t.c.state == "dead"))
            .values(state="pending", attempts=0, next_attempt_at=now)
        )
        if done.rowcount != 1:
            return False
        await audit_repo.append(conn, events)
    return True


async def delete_dead(db: Database, outbox_id: int, events: Sequence[AuditEvent]) -> bool:
    """Remove a dead letter for good, with its audit events; False when it is no longer dead."""
    async with transaction(db) as conn:
        done = await conn.execute(
            delete(outbox_t).where(and_(outbox_t.c.id == outbox_id, outbox_t.c.state == "dead"))
        )
        if done.rowcount != 1:
            return False
        await audit_repo.append(conn, events)
    return True
