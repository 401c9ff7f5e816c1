"""Expiry and crypto-shredding: which notices are due, and destroying their contents.

``shred`` removes a notice's ciphertext and every wrap (escrow included) in one transaction,
with the SHA-256 of each destroyed item in its audit events; the notice's metadata and its
deliveries stay, so the audit trail still says what existed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, select, update

from broker.audit.events import AuditEvent
from broker.store import Database, audit_repo
from broker.store.boundary import fetch_all, transaction
from broker.store.tables import NoticeRow, WrapRow

notice_t = NoticeRow.__table__  # type: ignore[attr-defined]
wrap_t = WrapRow.__table__  # type: ignore[attr-defined]


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
        for r in await fetch_all(db, query)
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
    async with transaction(db) as conn:
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
                select(wrap_t.c.recipient_id, wrap_t.c.wrap).where(wrap_t.c.notice_id == notice_id)
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
