"""Border crossings in the store: a forwarded notice committed with its federation outbox row, a
received one with its deliveries, and each with its ``federation_crossing`` row — one
transaction each, so a crossing is recorded exactly when its notice is.

The crossing row's unique (peer, direction, peer notice id) is what makes receiving idempotent:
a second delivery of the same notice by a peer finds the first answer instead of a second notice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select
from sqlalchemy.exc import IntegrityError

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
from broker.store.tables import FederationCrossingRow

crossing_t = FederationCrossingRow.__table__  # type: ignore[attr-defined]


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
) -> dict[str, Any]:
    return {
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


__all__ = ["CrossingRace", "CrossingRecord", "IdempotencyRace"]
