"""Enrolment in the store: codes kept as hashes, pending keys, refused attempts, approval.

Invariants:
- a code is consumed by one conditional UPDATE (unused and unexpired at ``now``): of two
  devices racing with the same code, exactly one gets it, on SQLite and PostgreSQL alike;
- the pending keys, the consumed code and the audit event commit together;
- an approval replaces the directory, marks the pending row and appends its audit events in one
  transaction: no key is bound without its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update

from broker.audit.events import AuditEvent
from broker.domain.directory import Directory
from broker.store import Database, audit_repo
from broker.store.boundary import fetch_all, fetch_first, transaction
from broker.store.directory_repo import replace_in
from broker.store.tables import EnrolmentAttemptRow, EnrolmentCodeRow, EnrolmentPendingRow

code_t = EnrolmentCodeRow.__table__  # type: ignore[attr-defined]
pending_t = EnrolmentPendingRow.__table__  # type: ignore[attr-defined]
attempt_t = EnrolmentAttemptRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    contact: str
    signing_public: bytes
    encryption_public: bytes
    submitted_at: datetime


async def add_code(
    db: Database,
    *,
    contact: str,
    code_hash: str,
    now: datetime,
    expires_at: datetime,
    actor: str,
    event: AuditEvent,
) -> None:
    async with transaction(db) as conn:
        await conn.execute(
            insert(code_t).values(
                contact_id=contact,
                code_hash=code_hash,
                created_at=now,
                expires_at=expires_at,
                created_by=actor[:128],
            )
        )
        await audit_repo.append(conn, [event])


async def refused_since(db: Database, since: datetime, source: str | None = None) -> int:
    """Refused attempts since ``since``: from ``source``, or from anywhere."""
    query = select(func.count()).select_from(attempt_t).where(attempt_t.c.at >= since)
    if source is not None:
        query = query.where(attempt_t.c.source == source)
    row = await fetch_first(db, query)
    return int(row[0]) if row else 0


async def record_refusal(
    db: Database, *, source: str, now: datetime, forget_before: datetime, event: AuditEvent
) -> None:
    """Count a refused code (and forget attempts older than the window) with its audit event."""
    async with transaction(db) as conn:
        await conn.execute(delete(attempt_t).where(attempt_t.c.at < forget_before))
        await conn.execute(insert(attempt_t).values(source=source[:64], at=now))
        await audit_repo.append(conn, [event])


async def consume_code(
    db: Database,
    *,
    code_hash: str,
    now: datetime,
    signing_public: bytes,
    encryption_public: bytes,
    event_for: Any,  # Callable[[str], AuditEvent]: the event, given the code's contact
) -> str | None:
    """Use the code and store the keys as pending; the contact, or None (unknown, used, expired)."""
    async with transaction(db) as conn:
        row = (
            await conn.execute(
                select(code_t.c.id, code_t.c.contact_id).where(code_t.c.code_hash == code_hash)
            )
        ).first()
        if row is None:
            return None
        taken = await conn.execute(
            update(code_t)
            .where(and_(code_t.c.id == row.id, code_t.c.used_at.is_(None)))
            .where(code_t.c.expires_at > now)
            .values(used_at=now)
        )
        if taken.rowcount != 1:
            return None
        await conn.execute(
            insert(pending_t).values(
                contact_id=row.contact_id,
                code_id=row.id,
                signing_public=signing_public,
                encryption_public=encryption_public,
                submitted_at=now,
                state="pending",
            )
        )
        await audit_repo.append(conn, [event_for(row.contact_id)])
        return str(row.contact_id)


async def pending(db: Database, contact: str | None = None) -> list[Pending]:
    """Keys waiting for approval, oldest first."""
    query = select(pending_t).where(pending_t.c.state == "pending").order_by(pending_t.c.id)
    if contact is not None:
        query = query.where(pending_t.c.contact_id == contact)
    return [
        Pending(
            r.id, r.contact_id, bytes(r.signing_public), bytes(r.encryption_public), r.submitted_at
        )
        for r in await fetch_all(db, query)
    ]


async def approve(
    db: Database,
    chosen: Pending,
    directory: Directory,
    *,
    content_hash: str,
    summary: str,
    actor: str,
    now: datetime,
    events_for: Any,  # Callable[[int], Sequence[AuditEvent]]: the events, given the revision
) -> int | None:
    """Bind the keys: the new directory revision, the row approved (its other pending rows
    superseded) and the events, in one transaction; None when the row is no longer pending."""
    async with transaction(db) as conn:
        taken = await conn.execute(
            update(pending_t)
            .where(and_(pending_t.c.id == chosen.id, pending_t.c.state == "pending"))
            .values(state="approved", decided_at=now)
        )
        if taken.rowcount != 1:
            return None
        await conn.execute(
            update(pending_t)
            .where(and_(pending_t.c.contact_id == chosen.contact, pending_t.c.state == "pending"))
            .values(state="superseded", decided_at=now)
        )
        revision = await replace_in(
            conn, directory, content_hash=content_hash, summary=summary, actor=actor, now=now
        )
        events: Sequence[AuditEvent] = events_for(revision)
        await audit_repo.append(conn, list(events))
        return revision


async def append_event(db: Database, event: AuditEvent) -> None:
    await audit_repo.append_events(db, [event])
