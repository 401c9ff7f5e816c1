"""Counts of stored state for the metrics endpoint."""

from __future__ import annotations

from sqlalchemy import func, select

from broker.store import Database
from broker.store.boundary import connection
from broker.store.tables import AuditHeadRow, DeliveryRow, OutboxRow


async def counts(db: Database) -> tuple[dict[str, int], dict[tuple[str, str], int], int]:
    delivery = DeliveryRow.__table__  # type: ignore[attr-defined]
    outbox = OutboxRow.__table__  # type: ignore[attr-defined]
    head = AuditHeadRow.__table__  # type: ignore[attr-defined]
    async with connection(db) as conn:
        states = {
            r[0]: int(r[1])
            for r in await conn.execute(
                select(delivery.c.state, func.count()).group_by(delivery.c.state)
            )
        }
        messages = {
            (r[0], r[1]): int(r[2])
            for r in await conn.execute(
                select(outbox.c.kind, outbox.c.state, func.count()).group_by(
                    outbox.c.kind, outbox.c.state
                )
            )
        }
        size = (await conn.execute(select(head.c.size).where(head.c.id == 1))).scalar() or 0
    return states, messages, int(size)
