"""Notices, wraps, deliveries, nonces and idempotency records in the database.

``commit_notice`` writes a notice with everything that belongs to it in one transaction, with
Core bulk statements (the ORM costs several times more per notice). The request nonce is part
of that transaction, so a replayed request and its original cannot both commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.audit.events import AuditEvent
from broker.domain.notice import DeliveryState, StoredNotice
from broker.errors import StoreUnavailable
from broker.store import Database, audit_repo, outbox_repo
from broker.store.listener import notify
from broker.store.tables import DeliveryRow, IdempotencyRow, NonceRow, NoticeRow, ReplyRow, WrapRow

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
wrap_t = WrapRow.__table__  # type: ignore[attr-defined]
delivery_t = DeliveryRow.__table__  # type: ignore[attr-defined]
nonce_t = NonceRow.__table__  # type: ignore[attr-defined]
idempotency_t = IdempotencyRow.__table__  # type: ignore[attr-defined]
reply_t = ReplyRow.__table__  # type: ignore[attr-defined]


class NonceReplayed(Exception):
    """This (key, nonce) pair was already used."""


class IdempotencyRace(Exception):
    """Another request with the same idempotency key committed first."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    request_hash: str
    notice_id: str
    response: dict[str, Any]


@dataclass(frozen=True)
class NoticeWrite:
    """Everything one accepted notice writes."""

    notice: dict[str, Any]
    wraps: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    nonce: dict[str, Any]
    idempotency: dict[str, Any] | None = None
    cancels: str | None = None  # id of the notice this one cancels
    audit: Sequence[AuditEvent] = ()
    outbox: Sequence[dict[str, Any]] = ()


async def commit_notice(db: Database, write: NoticeWrite) -> None:
    """Commit the notice, its wraps and deliveries, the nonce and the idempotency record."""
    try:
        async with db.begin() as conn:
            await audit_repo.lock_head(conn)  # delivery ids in commit order
            await _insert_nonce(conn, write.nonce)
            if write.idempotency is not None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(insert(idempotency_t), [write.idempotency])
                except IntegrityError as e:
                    raise IdempotencyRace() from e
            await conn.execute(insert(notice_t), [write.notice])
            await conn.execute(insert(wrap_t), write.wraps)
            await conn.execute(insert(delivery_t), write.deliveries)
            if write.cancels is not None:
                await conn.execute(
                    update(notice_t)
                    .where(notice_t.c.id == write.cancels)
                    .values(status="cancelled")
                )
            await outbox_repo.add(conn, write.outbox)
            await audit_repo.append(conn, write.audit)
            await notify(conn, {"notice": write.notice["id"]})
    except (NonceReplayed, IdempotencyRace):
        raise
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


class BatchConflict(Exception):
    """A batch hit a uniqueness conflict (a replayed nonce, a raced idempotency key): commit
    its notices one by one to learn which."""


async def commit_notices(db: Database, writes: Sequence[NoticeWrite]) -> None:
    """Commit several notices in one transaction with one statement per table (group commit).

    All or nothing: on a uniqueness conflict it raises ``BatchConflict`` and nothing is stored,
    so the caller can fall back to ``commit_notice`` for each write.
    """
    try:
        async with db.begin() as conn:
            await audit_repo.lock_head(conn)  # delivery ids in commit order
            await conn.execute(insert(nonce_t), [w.nonce for w in writes])
            idempotency = [w.idempotency for w in writes if w.idempotency is not None]
            if idempotency:
                await conn.execute(insert(idempotency_t), idempotency)
            await conn.execute(insert(notice_t), [w.notice for w in writes])
            await conn.execute(insert(wrap_t), [row for w in writes for row in w.wraps])
            await conn.execute(insert(delivery_t), [row for w in writes for row in w.deliveries])
            cancels = [w.cancels for w in writes if w.cancels is not None]
            if cancels:
                await conn.execute(
                    update(notice_t).where(notice_t.c.id.in_(cancels)).values(status="cancelled")
                )
            outbox = [row for w in writes for row in w.outbox]
            if outbox:
                await conn.execute(insert(outbox_repo.outbox_t), outbox)
            await audit_repo.append(conn, [event for w in writes for event in w.audit])
            for w in writes:
                await notify(conn, {"notice": w.notice["id"]})
    except IntegrityError as e:
        raise BatchConflict() from e
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def _insert_nonce(conn: AsyncConnection, nonce: dict[str, Any]) -> None:
    try:
        async with conn.begin_nested():
            await conn.execute(insert(nonce_t), [nonce])
    except IntegrityError as e:
        raise NonceReplayed() from e


async def record_nonce(
    db: Database, key_id: str, nonce: str, expires_at: datetime, audit: Sequence[AuditEvent] = ()
) -> None:
    """Record a nonce on its own (for requests that write nothing else); NonceReplayed if seen."""
    try:
        async with db.begin() as conn:
            await _insert_nonce(conn, {"key_id": key_id, "nonce": nonce, "expires_at": expires_at})
            await audit_repo.append(conn, audit)
    except NonceReplayed:
        raise
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def purge_nonces(db: Database, now: datetime) -> int:
    """Forget nonces that can no longer be replayed (their request is outside the skew window)."""
    try:
        async with db.begin() as conn:
            result = await conn.execute(delete(nonce_t).where(nonce_t.c.expires_at < now))
            return int(result.rowcount or 0)
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def find_idempotent(db: Database, sender: str, key: str) -> IdempotencyRecord | None:
    row = await _one(
        db,
        select(idempotency_t).where(
            and_(idempotency_t.c.sender_id == sender, idempotency_t.c.key == key)
        ),
    )
    if row is None:
        return None
    return IdempotencyRecord(row.request_hash, row.notice_id, json.loads(row.response))


async def get_notice(db: Database, notice_id: str) -> StoredNotice | None:
    row = await _one(db, select(*_META).where(notice_t.c.id == notice_id))
    return None if row is None else _stored(row)


_META = [
    notice_t.c[name]
    for name in (
        "id",
        "sender_id",
        "channel",
        "jurisdiction_id",
        "severity",
        "marking",
        "policy_hash",
        "kind",
        "status",
        "created_at",
        "expires_at",
        "supersedes_id",
        "recipient_count",
        "addressees",
        "requesting_role",
    )
]


def _stored(row: Any) -> StoredNotice:
    return StoredNotice(
        row.id,
        row.sender_id,
        row.channel,
        row.jurisdiction_id,
        row.severity,
        row.marking,
        row.policy_hash,
        row.kind,
        row.status,
        row.created_at,
        row.expires_at,
        row.supersedes_id,
        row.recipient_count,
        tuple(json.loads(row.addressees)),
        row.requesting_role,
    )


async def deliveries_of(db: Database, notice_id: str) -> list[DeliveryState]:
    rows = await _all(
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


async def wraps_of(db: Database, notice_id: str) -> dict[str, tuple[str, bytes]]:
    rows = await _all(db, select(wrap_t).where(wrap_t.c.notice_id == notice_id))
    return {r.recipient_id: (r.key_id, bytes(r.wrap)) for r in rows}


async def notice_columns(
    db: Database, notice_id: str, columns: Sequence[str]
) -> dict[str, Any] | None:
    row = await _one(
        db, select(*(notice_t.c[c] for c in columns)).where(notice_t.c.id == notice_id)
    )
    return None if row is None else dict(row._mapping)


async def _one(db: Database, statement: Any) -> Any:
    try:
        async with db.connect() as conn:
            return (await conn.execute(statement)).first()
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def _all(db: Database, statement: Any) -> list[Any]:
    try:
        async with db.connect() as conn:
            return list((await conn.execute(statement)).all())
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


# -- the recipient side -------------------------------------------------------------------------


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
        _inbox_item(r) for r in await _all(db, query.order_by(delivery_t.c.id.desc()).limit(limit))
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
    return [_inbox_item(r) for r in await _all(db, query)]


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
    return [_inbox_item(r) for r in await _all(db, query)]


async def recipient_copy(
    db: Database, notice_id: str, contact: str
) -> tuple[dict[str, Any], list[InboxItem], tuple[str, bytes] | None] | None:
    """What one recipient may fetch: the notice row, their deliveries of it, and their wrap."""
    row = await _one(db, select(notice_t).where(notice_t.c.id == notice_id))
    if row is None:
        return None
    query = (
        select(*_INBOX_COLUMNS)
        .select_from(delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id))
        .where(and_(delivery_t.c.notice_id == notice_id, delivery_t.c.contact_id == contact))
    )
    deliveries = [_inbox_item(r) for r in await _all(db, query)]
    wrap = await _one(
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


async def _execute(db: Database, statement: Any) -> int:
    try:
        async with db.begin() as conn:
            return int((await conn.execute(statement)).rowcount or 0)
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def mark_delivered(
    db: Database,
    ids: Sequence[int],
    now: datetime,
    events_for: Callable[[list[int]], Sequence[AuditEvent]] = lambda _: (),
) -> list[int]:
    """Mark deliveries delivered (once); ``events_for`` records the ones that changed."""
    if not ids:
        return []
    try:
        async with db.begin() as conn:
            pending = [
                r.id
                for r in (
                    await conn.execute(
                        select(delivery_t.c.id).where(
                            and_(
                                delivery_t.c.id.in_(list(ids)), delivery_t.c.delivered_at.is_(None)
                            )
                        )
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
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def mark_read(
    db: Database, notice_id: str, contact: str, now: datetime, audit: Sequence[AuditEvent] = ()
) -> None:
    where = and_(delivery_t.c.notice_id == notice_id, delivery_t.c.contact_id == contact)
    try:
        async with db.begin() as conn:
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
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


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
    try:
        async with db.begin() as conn:
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
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def replies_of(db: Database, notice_id: str) -> list[dict[str, Any]]:
    rows = await _all(
        db, select(reply_t).where(reply_t.c.notice_id == notice_id).order_by(reply_t.c.id)
    )
    return [dict(r._mapping) for r in rows]


# -- escalation and succession ----------------------------------------------------------------


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


async def open_deliveries(db: Database, channels: Sequence[str]) -> list[OpenDelivery]:
    """Deliveries of active notices on ``channels`` not yet acknowledged or escalated."""
    if not channels:
        return []
    acked = (
        select(delivery_t.c.notice_id, delivery_t.c.role_id)
        .where(delivery_t.c.acked_at.is_not(None))
        .distinct()
        .subquery()
    )
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
            acked.c.role_id.label("acked_role"),
        )
        .select_from(
            delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id).outerjoin(
                acked,
                and_(
                    acked.c.notice_id == delivery_t.c.notice_id,
                    acked.c.role_id == delivery_t.c.role_id,
                ),
            )
        )
        .where(
            and_(
                notice_t.c.status == "active",
                notice_t.c.channel.in_(list(channels)),
                delivery_t.c.acked_at.is_(None),
                delivery_t.c.escalated_at.is_(None),
            )
        )
        .order_by(delivery_t.c.id)
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
            r.acked_role is not None,
        )
        for r in await _all(db, query)
    ]


async def role_holders_of_open_notices(db: Database) -> dict[tuple[str, str], set[str]]:
    """(notice, role) -> contacts with a delivery, for active notices no one acknowledged via that role."""
    acked = (
        select(delivery_t.c.notice_id, delivery_t.c.role_id)
        .where(delivery_t.c.acked_at.is_not(None))
        .distinct()
        .subquery()
    )
    query = (
        select(delivery_t.c.notice_id, delivery_t.c.role_id, delivery_t.c.contact_id)
        .select_from(
            delivery_t.join(notice_t, notice_t.c.id == delivery_t.c.notice_id).outerjoin(
                acked,
                and_(
                    acked.c.notice_id == delivery_t.c.notice_id,
                    acked.c.role_id == delivery_t.c.role_id,
                ),
            )
        )
        .where(and_(notice_t.c.status == "active", acked.c.role_id.is_(None)))
    )
    result: dict[tuple[str, str], set[str]] = {}
    for r in await _all(db, query):
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
        async with db.begin() as conn:
            if escalated:
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
            existing = {
                r.recipient_id
                for r in (
                    await conn.execute(
                        select(wrap_t.c.recipient_id).where(wrap_t.c.notice_id == notice_id)
                    )
                ).all()
            }
            new_wraps = [w for w in wraps if w["recipient_id"] not in existing]
            if new_wraps:
                await conn.execute(insert(wrap_t), new_wraps)
            ids = []
            await audit_repo.lock_head(conn)  # delivery ids in commit order
            for delivery in deliveries:
                try:
                    async with conn.begin_nested():
                        result = await conn.execute(insert(delivery_t).values(**delivery))
                        key = result.inserted_primary_key
                        if key is not None:
                            ids.append(int(key[0]))
                except IntegrityError:
                    continue  # that recipient already has it through that role
            if ids:
                await outbox_repo.add(conn, outbox)
                await audit_repo.append(conn, audit)
                for start in range(0, len(ids), 500):  # NOTIFY payloads are capped at 8000 bytes
                    await notify(conn, {"deliveries": ids[start : start + 500]})
            return ids
    except _Skip:
        return []
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


class _Skip(Exception):
    pass


# -- expiry and crypto-shredding --------------------------------------------------------------


async def due_for_shredding(
    db: Database, now: datetime, limit: int = 100
) -> list[tuple[str, str, str]]:
    """(notice id, channel, reason) of notices whose contents must be destroyed by ``now``."""
    expired = and_(notice_t.c.expires_at.is_not(None), notice_t.c.expires_at <= now)
    query = (
        select(notice_t.c.id, notice_t.c.channel, notice_t.c.expires_at, notice_t.c.retain_until)
        .where(and_(notice_t.c.status != "shredded", (expired | (notice_t.c.retain_until <= now))))
        .order_by(notice_t.c.created_at)
        .limit(limit)
    )
    return [
        (
            r.id,
            r.channel,
            "expired" if r.expires_at is not None and r.expires_at <= now else "retention",
        )
        for r in await _all(db, query)
    ]


async def shred(
    db: Database,
    notice_id: str,
    now: datetime,
    events_for: Callable[[dict[str, str]], Sequence[AuditEvent]],
) -> bool:
    """Destroy a notice's ciphertext and every wrap (escrow included) in one transaction.

    ``events_for`` receives the SHA-256 of each destroyed item, so the audit log can prove what
    was destroyed without keeping it. Returns False when it was already shredded.
    """
    try:
        async with db.begin() as conn:
            row = (
                await conn.execute(
                    select(notice_t.c.ciphertext, notice_t.c.status)
                    .where(notice_t.c.id == notice_id)
                    .with_for_update()  # two processes' shredders: one destroys, one sees it done
                )
            ).first()
            if row is None or row.status == "shredded":
                return False
            hashes = {"ciphertext": hashlib.sha256(bytes(row.ciphertext or b"")).hexdigest()}
            for wrap in (
                await conn.execute(
                    select(wrap_t.c.recipient_id, wrap_t.c.wrap).where(
                        wrap_t.c.notice_id == notice_id
                    )
                )
            ).all():
                hashes[f"wrap:{wrap.recipient_id}"] = hashlib.sha256(bytes(wrap.wrap)).hexdigest()
            await conn.execute(
                update(notice_t)
                .where(notice_t.c.id == notice_id)
                .values(ciphertext=None, aead_nonce=None, status="shredded")
            )
            await conn.execute(delete(wrap_t).where(wrap_t.c.notice_id == notice_id))
            await audit_repo.append(conn, events_for(hashes))
            return True
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


# -- what an intake decision reads ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntakeReads:
    """What one intake decision needs from the store, read over one connection."""

    earlier: StoredNotice | None = None  # the notice named by ``supersedes``
    earlier_roles: tuple[str, ...] = ()  # the roles it reached, each once, in delivery order
    request: StoredNotice | None = None  # the notice named by ``in_reply_to``


async def intake_reads(
    db: Database,
    *,
    supersedes: str | None,
    in_reply_to: str | None,
) -> IntakeReads:
    """The superseded notice and its delivery roles, and the request answered: one connection,
    only the statements needed (the idempotency record is ``find_idempotent``'s, when asked)."""
    try:
        async with db.connect() as conn:
            earlier = await _notice_on(conn, supersedes)
            roles: tuple[str, ...] = ()
            if earlier is not None:
                rows = await conn.execute(
                    select(delivery_t.c.role_id)
                    .where(delivery_t.c.notice_id == earlier.id)
                    .order_by(delivery_t.c.id)
                )
                roles = tuple(dict.fromkeys(r.role_id for r in rows.all()))
            return IntakeReads(earlier, roles, await _notice_on(conn, in_reply_to))
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def _notice_on(conn: AsyncConnection, notice_id: str | None) -> StoredNotice | None:
    if notice_id is None:
        return None
    row = (await conn.execute(select(*_META).where(notice_t.c.id == notice_id))).first()
    return None if row is None else _stored(row)
