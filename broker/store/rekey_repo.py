"""Key changes: the wraps of active notices made for given keys, and replacing one wrap.

``replace_wrap`` changes a wrap only while it is still for the key the caller saw (a concurrent
run, in this process or another, may have re-wrapped it already), and appends its audit events
in the same transaction: a wrap never changes without its record, nor twice for one change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.audit.events import AuditEvent
from broker.store import Database, audit_repo, outbox_repo
from broker.store.boundary import fetch_all, transaction
from broker.store.tables import NoticeRow, OutboxRow, WrapRow

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
wrap_t = WrapRow.__table__  # type: ignore[attr-defined]
outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]

CHUNK = 500  # key ids per query: bounded parameter lists on both databases


@dataclass(frozen=True, slots=True)
class HeldWrap:
    notice_id: str
    contact: str
    key_id: str


async def wraps_for_keys(db: Database, key_ids: Sequence[str]) -> list[HeldWrap]:
    """The wraps for any of ``key_ids`` on active notices whose ciphertext still exists."""
    found: list[HeldWrap] = []
    ordered = sorted(key_ids)
    for start in range(0, len(ordered), CHUNK):
        query = (
            select(wrap_t.c.notice_id, wrap_t.c.recipient_id, wrap_t.c.key_id)
            .select_from(wrap_t.join(notice_t, notice_t.c.id == wrap_t.c.notice_id))
            .where(
                and_(
                    wrap_t.c.key_id.in_(ordered[start : start + CHUNK]),
                    notice_t.c.status == "active",
                    notice_t.c.ciphertext.is_not(None),
                )
            )
        )
        found += [
            HeldWrap(r.notice_id, r.recipient_id, r.key_id) for r in await fetch_all(db, query)
        ]
    return sorted(found, key=lambda w: (w.notice_id, w.contact))


async def wrapped_key_ids(db: Database, exclude: str) -> set[str]:
    """Every key id some active notice is wrapped for (but ``exclude``, the escrow's): one scan,
    at start-up, to find wraps for keys that were removed while no broker was watching."""
    query = (
        select(wrap_t.c.key_id)
        .select_from(wrap_t.join(notice_t, notice_t.c.id == wrap_t.c.notice_id))
        .where(and_(notice_t.c.status == "active", wrap_t.c.recipient_id != exclude))
        .distinct()
    )
    return {r.key_id for r in await fetch_all(db, query)}


async def replace_wrap(
    db: Database,
    held: HeldWrap,
    *,
    key_id: str,
    sealed: bytes,
    audit: Sequence[AuditEvent],
    outbox: Sequence[dict[str, Any]] = (),
) -> bool:
    """Re-wrap ``held`` for ``key_id``; False (nothing changed) when it is no longer as seen."""
    async with transaction(db) as conn:
        await audit_repo.lock_head(conn)
        changed = (
            await conn.execute(
                update(wrap_t)
                .where(
                    and_(
                        wrap_t.c.notice_id == held.notice_id,
                        wrap_t.c.recipient_id == held.contact,
                        wrap_t.c.key_id == held.key_id,
                    )
                )
                .values(key_id=key_id, wrap=sealed)
            )
        ).rowcount
        if changed != 1:
            return False
        for row in outbox:
            await _rearm(conn, row)
        await audit_repo.append(conn, audit)
        return True


async def _rearm(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Send a webhook message again (with a new ``msg_id``): one row per notice, kind and target."""
    again = {k: row[k] for k in ("msg_id", "state", "attempts", "next_attempt_at", "contact_id")}
    changed = (
        await conn.execute(
            update(outbox_t)
            .where(
                and_(
                    outbox_t.c.notice_id == row["notice_id"],
                    outbox_t.c.kind == row["kind"],
                    outbox_t.c.target == row["target"],
                )
            )
            .values(**again, last_error=None, sent_at=None)
        )
    ).rowcount
    if not changed:
        await outbox_repo.add(conn, [row])
