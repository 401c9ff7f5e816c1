"""Notices held for two-person release (``service.release``): read, release, close.

Each decision is one transaction with its nonce and audit events, and takes effect only if the
row is still ``waiting`` (a conditional update): two officers approving at once, or an approval
racing the timeout, decide once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.audit.events import AuditEvent
from broker.store import Database, audit_repo, outbox_repo
from broker.store.boundary import fetch_all, fetch_first, transaction
from broker.store.intake_repo import (
    NonceReplayed,
    _insert_nonce,
    delivery_t,
    notice_t,
    release_t,
    wrap_t,
)
from broker.store.listener import notify

ESCROW = "broker-escrow"

Nonce = tuple[str, str, datetime]  # key id, nonce, until when it is remembered


@dataclass(frozen=True)
class Held:
    notice_id: str
    sender: str
    sender_key_id: str
    channel: str
    content_digest: str
    state: str
    deliveries: list[dict[str, Any]]
    escrow_wrap: bytes
    escrow_key_id: str


async def held(db: Database, notice_id: str) -> Held | None:
    statement = (
        select(
            release_t.c.state,
            release_t.c.deliveries,
            notice_t.c.sender_id,
            notice_t.c.sender_key_id,
            notice_t.c.channel,
            notice_t.c.content_digest,
            wrap_t.c.wrap,
            wrap_t.c.key_id,
        )
        .join(notice_t, notice_t.c.id == release_t.c.notice_id)
        .join(wrap_t, and_(wrap_t.c.notice_id == notice_t.c.id, wrap_t.c.recipient_id == ESCROW))
        .where(release_t.c.notice_id == notice_id[:40])
    )
    row = await fetch_first(db, statement)
    if row is None:
        return None
    return Held(
        notice_id[:40],
        row.sender_id,
        row.sender_key_id,
        row.channel,
        row.content_digest,
        row.state,
        json.loads(row.deliveries),
        bytes(row.wrap),
        row.key_id,
    )


async def state_of(db: Database, notice_id: str) -> dict[str, Any] | None:
    row = await fetch_first(db, select(release_t).where(release_t.c.notice_id == notice_id))
    return None if row is None else dict(row._mapping)


async def overdue(db: Database, now: datetime) -> list[Held]:
    rows = await fetch_all(
        db,
        select(release_t.c.notice_id).where(
            and_(release_t.c.state == "waiting", release_t.c.deadline <= now)
        ),
    )
    found = [await held(db, r.notice_id) for r in rows]
    return [h for h in found if h is not None]


async def _nonce(conn: AsyncConnection, nonce: Nonce | None) -> None:
    if nonce is not None:
        await _insert_nonce(conn, {"key_id": nonce[0], "nonce": nonce[1], "expires_at": nonce[2]})


async def _decide(
    conn: AsyncConnection,
    notice_id: str,
    state: str,
    by: str | None,
    reason: str | None,
    now: datetime,
) -> bool:
    result = await conn.execute(
        update(release_t)
        .where(and_(release_t.c.notice_id == notice_id, release_t.c.state == "waiting"))
        .values(state=state, decided_by=by, decided_at=now, reason=reason)
    )
    return bool(result.rowcount)


async def refused_attempt(
    db: Database, event: AuditEvent, key_id: str, nonce: str, expires_at: datetime
) -> None:
    """A refused approval: its nonce spent and the refusal audited, nothing else changed."""
    async with transaction(db) as conn:
        with suppress(NonceReplayed):  # a replayed refusal is still audited
            await _nonce(conn, (key_id, nonce, expires_at))
        await audit_repo.append(conn, [event])


async def close(
    db: Database,
    notice_id: str,
    state: str,
    by: str | None,
    reason: str | None,
    now: datetime,
    events: Sequence[AuditEvent],
    nonce: Nonce | None = None,
) -> bool:
    """Refused by an officer or by timeout: the notice stays unrouted, its status ``refused``."""
    async with transaction(db) as conn:
        await _nonce(conn, nonce)
        if not await _decide(conn, notice_id, state, by, reason, now):
            return False
        await conn.execute(
            update(notice_t).where(notice_t.c.id == notice_id).values(status="refused")
        )
        await audit_repo.append(conn, events)
    return True


async def release(
    db: Database,
    notice_id: str,
    by: str,
    now: datetime,
    wraps: list[dict[str, Any]],
    deliveries: list[dict[str, Any]],
    outbox: Sequence[dict[str, Any]],
    events: Sequence[AuditEvent],
    nonce: Nonce,
) -> bool:
    """Approved: wraps, deliveries and announcements written, the notice active, one commit."""
    async with transaction(db) as conn:
        await audit_repo.lock_head(conn)  # delivery ids in commit order, as intake
        await _nonce(conn, nonce)
        if not await _decide(conn, notice_id, "approved", by, None, now):
            return False
        if wraps:
            await conn.execute(insert(wrap_t), wraps)
        if deliveries:
            rows = [{**d, "notice_id": notice_id} for d in deliveries]
            await conn.execute(insert(delivery_t), rows)
        await conn.execute(
            update(notice_t)
            .where(notice_t.c.id == notice_id)
            .values(status="active", recipient_count=len({d["contact_id"] for d in deliveries}))
        )
        await outbox_repo.add(conn, outbox)
        await audit_repo.append(conn, events)
        await notify(conn, {"notice": notice_id})
    return True
