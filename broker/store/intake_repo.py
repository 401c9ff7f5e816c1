"""What intake writes: a notice with its wraps, deliveries, nonce and idempotency record.

``commit_notice`` writes a notice with everything that belongs to it in one transaction, with
Core bulk statements (the ORM costs several times more per notice). The request nonce is part
of that transaction, so a replayed request and its original cannot both commit. The notice row
and its wraps are read back here too (``get_notice``, ``notice_columns``, ``wraps_of``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.audit.events import AuditEvent
from broker.domain.notice import StoredNotice
from broker.store import Database, audit_repo, outbox_repo
from broker.store.boundary import connection, fetch_all, fetch_first, transaction
from broker.store.listener import notify
from broker.store.tables import (
    DeliveryRow,
    IdempotencyRow,
    NonceRow,
    NoticeRow,
    ReleaseRow,
    WrapRow,
)

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
wrap_t = WrapRow.__table__  # type: ignore[attr-defined]
delivery_t = DeliveryRow.__table__  # type: ignore[attr-defined]
nonce_t = NonceRow.__table__  # type: ignore[attr-defined]
idempotency_t = IdempotencyRow.__table__  # type: ignore[attr-defined]
release_t = ReleaseRow.__table__  # type: ignore[attr-defined]


class NonceReplayed(Exception):
    """This (key, nonce) pair was already used."""


class IdempotencyRace(Exception):
    """Another request with the same idempotency key committed first."""


class BatchConflict(Exception):
    """A batch hit a uniqueness conflict (a replayed nonce, a raced idempotency key): commit
    its notices one by one to learn which."""


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
    release: dict[str, Any] | None = None  # held for two-person release (store.release_repo)


async def commit_notice(db: Database, write: NoticeWrite) -> None:
    """Commit the notice, its wraps and deliveries, the nonce and the idempotency record."""
    async with transaction(db) as conn:
        await audit_repo.lock_head(conn)  # delivery ids in commit order
        await _insert_nonce(conn, write.nonce)
        if write.idempotency is not None:
            await _insert_idempotency(conn, write.idempotency)
        await conn.execute(insert(notice_t), [write.notice])
        await conn.execute(insert(wrap_t), write.wraps)
        if write.deliveries:  # a notice held for release has none yet
            await conn.execute(insert(delivery_t), write.deliveries)
        if write.release is not None:
            await conn.execute(insert(release_t), [write.release])
        if write.cancels is not None:
            await conn.execute(
                update(notice_t).where(notice_t.c.id == write.cancels).values(status="cancelled")
            )
        await outbox_repo.add(conn, write.outbox)
        await audit_repo.append(conn, write.audit)
        await notify(conn, {"notice": write.notice["id"]})


async def commit_notices(db: Database, writes: Sequence[NoticeWrite]) -> None:
    """Commit several notices in one transaction with one statement per table (group commit).

    All or nothing: on a uniqueness conflict it raises ``BatchConflict`` and nothing is stored,
    so the caller can fall back to ``commit_notice`` for each write.
    """
    async with transaction(db, conflict=BatchConflict) as conn:
        await audit_repo.lock_head(conn)  # delivery ids in commit order
        await conn.execute(insert(nonce_t), [w.nonce for w in writes])
        idempotency = [w.idempotency for w in writes if w.idempotency is not None]
        if idempotency:
            await conn.execute(insert(idempotency_t), idempotency)
        await conn.execute(insert(notice_t), [w.notice for w in writes])
        await conn.execute(insert(wrap_t), [row for w in writes for row in w.wraps])
        deliveries = [row for w in writes for row in w.deliveries]
        if deliveries:
            await conn.execute(insert(delivery_t), deliveries)
        releases = [w.release for w in writes if w.release is not None]
        if releases:
            await conn.execute(insert(release_t), releases)
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


async def _insert_nonce(conn: AsyncConnection, nonce: dict[str, Any]) -> None:
    try:
        async with conn.begin_nested():
            await conn.execute(insert(nonce_t), [nonce])
    except IntegrityError as e:
        raise NonceReplayed() from e


async def _insert_idempotency(conn: AsyncConnection, record: dict[str, Any]) -> None:
    try:
        async with conn.begin_nested():
            await conn.execute(insert(idempotency_t), [record])
    except IntegrityError as e:
        raise IdempotencyRace() from e


async def record_nonce(
    db: Database, key_id: str, nonce: str, expires_at: datetime, audit: Sequence[AuditEvent] = ()
) -> None:
    """Record a nonce on its own (for requests that write nothing else); NonceReplayed if seen."""
    async with transaction(db) as conn:
        await _insert_nonce(conn, {"key_id": key_id, "nonce": nonce, "expires_at": expires_at})
        await audit_repo.append(conn, audit)


async def purge_nonces(db: Database, now: datetime) -> int:
    """Forget nonces that can no longer be replayed (their request is outside the skew window)."""
    async with transaction(db) as conn:
        result = await conn.execute(delete(nonce_t).where(nonce_t.c.expires_at < now))
        return int(result.rowcount or 0)


async def find_idempotent(db: Database, sender: str, key: str) -> IdempotencyRecord | None:
    row = await fetch_first(
        db,
        select(idempotency_t).where(
            and_(idempotency_t.c.sender_id == sender, idempotency_t.c.key == key)
        ),
    )
    if row is None:
        return None
    return IdempotencyRecord(row.request_hash, row.notice_id, json.loads(row.response))


async def get_notice(db: Database, notice_id: str) -> StoredNotice | None:
    row = await fetch_first(db, select(*_META).where(notice_t.c.id == notice_id))
    return None if row is None else _stored(row)


def reply_to_role_of(notice: Any) -> Any:
    """The role that asked the request ``notice`` (a notice table or alias) answers, as a
    column: intake decided an answer's routing with it (``NoticeFacts.reply_to_role``), so
    every later decision about the answer sees it too."""
    request = notice_t.alias("answered")
    return (
        select(request.c.requesting_role)
        .where(request.c.id == notice.c.in_reply_to)
        .scalar_subquery()
        .label("reply_to_role")
    )


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
        "exercise",
    )
] + [reply_to_role_of(notice_t)]


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
        row.exercise,
        row.reply_to_role,
    )


async def wraps_of(db: Database, notice_id: str) -> dict[str, tuple[str, bytes]]:
    rows = await fetch_all(db, select(wrap_t).where(wrap_t.c.notice_id == notice_id))
    return {r.recipient_id: (r.key_id, bytes(r.wrap)) for r in rows}


async def notice_columns(
    db: Database, notice_id: str, columns: Sequence[str]
) -> dict[str, Any] | None:
    row = await fetch_first(
        db, select(*(notice_t.c[c] for c in columns)).where(notice_t.c.id == notice_id)
    )
    return None if row is None else dict(row._mapping)


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
    async with connection(db) as conn:
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


async def _notice_on(conn: AsyncConnection, notice_id: str | None) -> StoredNotice | None:
    if notice_id is None:
        return None
    row = (await conn.execute(select(*_META).where(notice_t.c.id == notice_id))).first()
    return None if row is None else _stored(row)
