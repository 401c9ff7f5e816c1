"""Notices, wraps, deliveries, nonces and idempotency records in the database.

``commit_notice`` writes a notice with everything that belongs to it in one transaction, with
Core bulk statements (the ORM costs several times more per notice). The request nonce is part
of that transaction, so a replayed request and its original cannot both commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.domain.notice import DeliveryState, StoredNotice
from broker.errors import StoreUnavailable
from broker.store import Database
from broker.store.tables import DeliveryRow, IdempotencyRow, NonceRow, NoticeRow, WrapRow

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
wrap_t = WrapRow.__table__  # type: ignore[attr-defined]
delivery_t = DeliveryRow.__table__  # type: ignore[attr-defined]
nonce_t = NonceRow.__table__  # type: ignore[attr-defined]
idempotency_t = IdempotencyRow.__table__  # type: ignore[attr-defined]


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


async def commit_notice(db: Database, write: NoticeWrite) -> None:
    """Commit the notice, its wraps and deliveries, the nonce and the idempotency record."""
    try:
        async with db.begin() as conn:
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
    except (NonceReplayed, IdempotencyRace):
        raise
    except (DBAPIError, OSError) as e:
        raise StoreUnavailable("database unavailable") from e


async def _insert_nonce(conn: AsyncConnection, nonce: dict[str, Any]) -> None:
    try:
        async with conn.begin_nested():
            await conn.execute(insert(nonce_t), [nonce])
    except IntegrityError as e:
        raise NonceReplayed() from e


async def record_nonce(db: Database, key_id: str, nonce: str, expires_at: datetime) -> None:
    """Record a nonce on its own (for requests that write nothing else); NonceReplayed if seen."""
    try:
        async with db.begin() as conn:
            await _insert_nonce(conn, {"key_id": key_id, "nonce": nonce, "expires_at": expires_at})
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
