"""Border crossings in the store: a forwarded notice committed with its federation outbox row, a
received one with its deliveries, and each with its ``federation_crossing`` row — one
transaction each, so a crossing is recorded exactly when its notice is.

The crossing row's unique (peer, direction, peer notice id) is what makes receiving idempotent:
a second delivery of the same notice by a peer finds the first answer instead of a second notice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from broker.audit.events import AuditEvent
from broker.store import Database, audit_repo, outbox_repo
from broker.store.boundary import connection, transaction
from broker.store.intake_repo import (
    IdempotencyRace,
    NoticeWrite,
    _insert_idempotency,
    _insert_nonce,
    delivery_t,
    notice_t,
    wrap_t,
)
from broker.store.listener import notify
from broker.store.outbox_repo import outbox_t
from broker.store.tables import FederationCrossingRow, ReplyRow

crossing_t = FederationCrossingRow.__table__  # type: ignore[attr-defined]
reply_t = ReplyRow.__table__  # type: ignore[attr-defined]


class CrossingRace(Exception):
    """Another request recorded this peer's notice first: read its answer."""


@dataclass(frozen=True)
class CrossingRecord:
    notice_id: str
    peer: str
    direction: str
    peer_notice_id: str
    agreement: str
    origin_root: bytes | None
    origin_bindings: bytes | None
    answer: dict[str, Any]
    foreign_status: dict[str, Any] | None = None  # sent: the peer's latest report, merged
    relay_to: str | None = None  # received and relayed (the hub): the peer it went on to
    origin_country: str | None = None  # whose directory origin_root is (None: the peer's)


async def commit_crossing(db: Database, write: NoticeWrite, crossing: dict[str, Any]) -> None:
    """The notice (forwarded or received), its wraps, deliveries, outbox and crossing rows."""
    async with transaction(db) as conn:
        await audit_repo.lock_head(conn)
        if write.nonce:
            await _insert_nonce(conn, write.nonce)
        if write.idempotency is not None:
            await _insert_idempotency(conn, write.idempotency)
        try:
            async with conn.begin_nested():
                await conn.execute(insert(crossing_t), [crossing])
        except IntegrityError as e:
            raise CrossingRace() from e
        await conn.execute(insert(notice_t), [write.notice])
        await conn.execute(insert(wrap_t), write.wraps)
        if write.deliveries:
            await conn.execute(insert(delivery_t), write.deliveries)
        if write.cancels is not None:  # a cancel that crossed (either side)
            await conn.execute(
                update(notice_t).where(notice_t.c.id == write.cancels).values(status="cancelled")
            )
        await outbox_repo.add(conn, write.outbox)
        await audit_repo.append(conn, write.audit)
        await notify(conn, {"notice": write.notice["id"]})


def crossing_row(
    *,
    notice_id: str,
    peer: str,
    direction: str,
    peer_notice_id: str,
    agreement: str,
    answer: dict[str, Any],
    now: datetime,
    origin: tuple[bytes, bytes] | None = None,
    origin_country: str | None = None,
    relay_to: str | None = None,
) -> dict[str, Any]:
    return {
        "relay_to": relay_to,
        "origin_country": origin_country,
        "notice_id": notice_id,
        "peer": peer,
        "direction": direction,
        "peer_notice_id": peer_notice_id,
        "agreement": agreement,
        "origin_root": origin[0] if origin else None,
        "origin_bindings": origin[1] if origin else None,
        "answer": json.dumps(answer),
        "created_at": now,
    }


def _record(row: Any) -> CrossingRecord:
    return CrossingRecord(
        row.notice_id,
        row.peer,
        row.direction,
        row.peer_notice_id,
        row.agreement,
        row.origin_root,
        row.origin_bindings,
        json.loads(row.answer),
        json.loads(row.foreign_status) if row.foreign_status else None,
        row.relay_to,
        row.origin_country,
    )


async def received(db: Database, peer: str, peer_notice_id: str) -> CrossingRecord | None:
    """The crossing already recorded for this peer's notice, if any."""
    async with connection(db) as conn:
        row = (
            await conn.execute(
                select(crossing_t).where(
                    and_(
                        crossing_t.c.peer == peer,
                        crossing_t.c.direction == "receive",
                        crossing_t.c.peer_notice_id == peer_notice_id,
                    )
                )
            )
        ).first()
    return None if row is None else _record(row)


async def crossing_of(db: Database, notice_id: str) -> CrossingRecord | None:
    async with connection(db) as conn:
        row = (
            await conn.execute(select(crossing_t).where(crossing_t.c.notice_id == notice_id))
        ).first()
    return None if row is None else _record(row)


async def forwarded_notice(db: Database, notice_id: str) -> dict[str, Any] | None:
    """What the forwarder sends: the notice row and its wraps, as stored."""
    async with connection(db) as conn:
        row = (await conn.execute(select(notice_t).where(notice_t.c.id == notice_id))).first()
        if row is None:
            return None
        wraps = (await conn.execute(select(wrap_t).where(wrap_t.c.notice_id == notice_id))).all()
    return {**dict(row._mapping), "wraps": [dict(w._mapping) for w in wraps]}


async def drop_relayed_body(
    db: Database, notice_id: str, make_event: Callable[[str], AuditEvent]
) -> bool:
    """A relayed notice the next peer holds: its ciphertext, nonce and every wrap removed here,
    so the hub keeps metadata only; audited with the ciphertext's SHA-256 (``make_event``).
    False when already done."""
    async with transaction(db) as conn:
        await audit_repo.lock_head(conn)
        row = (
            await conn.execute(select(notice_t.c.ciphertext).where(notice_t.c.id == notice_id))
        ).first()
        if row is None or row.ciphertext is None:
            return False
        digest = hashlib.sha256(bytes(row.ciphertext)).hexdigest()
        await conn.execute(
            update(notice_t)
            .where(notice_t.c.id == notice_id)
            .values(ciphertext=None, aead_nonce=None)
        )
        await conn.execute(delete(wrap_t).where(wrap_t.c.notice_id == notice_id))
        await audit_repo.append(conn, [make_event(digest)])
    return True


async def drop_relayed_replies(
    db: Database, notice_id: str, reply_ids: list[int], make_event: Callable[[int, str], AuditEvent]
) -> int:
    """Replies to a relayed notice that the sending side now holds: their sealed bytes emptied
    here (the row stays, with its role, time and key id, so a report never sends it as new),
    audited once with how many and a SHA-256 over their ciphertexts (``make_event``). The
    number dropped; 0 when they already were."""
    if not reply_ids:
        return 0
    async with transaction(db) as conn:
        await audit_repo.lock_head(conn)
        rows = (
            await conn.execute(
                select(reply_t.c.id, reply_t.c.ciphertext)
                .where(reply_t.c.notice_id == notice_id, reply_t.c.id.in_(reply_ids))
                .order_by(reply_t.c.id)
            )
        ).all()
        held = [r for r in rows if r.ciphertext]
        if not held:
            return 0
        digest = hashlib.sha256(b"".join(bytes(r.ciphertext) for r in held)).hexdigest()
        await conn.execute(
            update(reply_t)
            .where(reply_t.c.id.in_([r.id for r in held]))
            .values(wrap=b"", nonce=b"", ciphertext=b"")
        )
        await audit_repo.append(conn, [make_event(len(held), digest)])
    return len(held)


async def count_crossings(db: Database, direction: str) -> int:
    async with connection(db) as conn:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(crossing_t)
                    .where(crossing_t.c.direction == direction)
                )
            ).scalar_one()
        )


# -- status reports: the receiving side's queue, the sending side's view -------------------------


@dataclass(frozen=True)
class OpenReport:
    """A received notice whose status is reported to its peer, with its outbox row."""

    notice_id: str
    peer: str
    outbox_id: int
    outbox_state: str
    armed: str | None
    sent: str | None


async def open_reports(db: Database, now: datetime, *, limit: int) -> list[OpenReport]:
    """Received notices still kept here (not past retention) and their status rows."""
    query = (
        select(
            crossing_t.c.notice_id,
            crossing_t.c.peer,
            crossing_t.c.report_armed,
            crossing_t.c.report_sent,
            outbox_t.c.id,
            outbox_t.c.state,
        )
        .join(
            outbox_t,
            and_(
                outbox_t.c.notice_id == crossing_t.c.notice_id,
                outbox_t.c.kind == "peer",
                outbox_t.c.target == crossing_t.c.peer,
            ),
        )
        .join(notice_t, notice_t.c.id == crossing_t.c.notice_id)
        .where(and_(crossing_t.c.direction == "receive", notice_t.c.retain_until > now))
        .order_by(crossing_t.c.created_at.desc())
        .limit(limit)
    )
    async with connection(db) as conn:
        rows = (await conn.execute(query)).all()
    return [
        OpenReport(r.notice_id, r.peer, r.id, r.state, r.report_armed, r.report_sent) for r in rows
    ]


async def arm_report(db: Database, report: OpenReport, digest: str, now: datetime) -> None:
    """Queue the status row again: the state changed since the peer last accepted a report."""
    async with transaction(db) as conn:
        await conn.execute(
            update(outbox_t)
            .where(outbox_t.c.id == report.outbox_id)
            .values(state="pending", attempts=0, next_attempt_at=now, last_error=None)
        )
        await conn.execute(
            update(crossing_t)
            .where(crossing_t.c.notice_id == report.notice_id)
            .values(report_armed=digest)
        )


async def report_accepted(db: Database, notice_id: str, digest: str) -> None:
    """The peer accepted a report of this snapshot."""
    async with transaction(db) as conn:
        await conn.execute(
            update(crossing_t).where(crossing_t.c.notice_id == notice_id).values(report_sent=digest)
        )


MergeReport = Callable[
    [dict[str, Any] | None],
    tuple[dict[str, Any], datetime, list[AuditEvent], list[dict[str, Any]]],
]


async def record_report(
    db: Database, notice_id: str, nonce: dict[str, Any], merge: MergeReport
) -> list[AuditEvent]:
    """A peer's report, merged into the view kept of the notice, with its nonce and audit
    events, in one transaction (so two reports at once cannot lose one another's roles)."""
    async with transaction(db) as conn:
        await audit_repo.lock_head(conn)
        await _insert_nonce(conn, nonce)
        stored = (
            await conn.execute(
                select(crossing_t.c.foreign_status).where(crossing_t.c.notice_id == notice_id)
            )
        ).scalar_one()
        merged, as_of, events, replies = merge(None if stored is None else json.loads(stored))
        if replies:
            await conn.execute(insert(reply_t), replies)
        await conn.execute(
            update(crossing_t)
            .where(crossing_t.c.notice_id == notice_id)
            .values(foreign_status=json.dumps(merged, sort_keys=True), foreign_status_at=as_of)
        )
        await audit_repo.append(conn, events)
    return events


async def foreign_status(db: Database, notice_id: str) -> dict[str, Any] | None:
    """What the peer last reported of a forwarded notice (None: nothing yet, or not forwarded)."""
    async with connection(db) as conn:
        stored = (
            await conn.execute(
                select(crossing_t.c.foreign_status).where(crossing_t.c.notice_id == notice_id)
            )
        ).scalar_one_or_none()
    return None if stored is None else dict(json.loads(stored))


__all__ = ["CrossingRace", "CrossingRecord", "IdempotencyRace", "OpenReport"]
