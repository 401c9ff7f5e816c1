"""Witnessing in the store: what this broker cosigned of each peer's log, what it refused, and
the peers' cosignatures on this broker's own checkpoints.

The state of a log moves by compare-and-swap: ``advance`` writes the new (size, root) only
where the row still holds the (size, root) the decision was made on (or, for a first
checkpoint, where no row exists yet). Two concurrent requests decided on the same state: one
wins, the other is told ``StateMoved`` and decides again on what is stored now — so a smaller
checkpoint can never overwrite a larger one (c2sp.org/tlog-witness's rollback race).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import and_, func, insert, select, update

from broker.audit.events import AuditEvent
from broker.audit.witness import WitnessState
from broker.crypto.note import DASH
from broker.store import Database, audit_repo
from broker.store.audit_repo import checkpoint_t
from broker.store.boundary import fetch_all, fetch_first, transaction
from broker.store.tables import WitnessEvidenceRow, WitnessLogRow

log_t = WitnessLogRow.__table__  # type: ignore[attr-defined]
evidence_t = WitnessEvidenceRow.__table__  # type: ignore[attr-defined]
EVIDENCE_MAX_PER_LOG = 1000  # refused requests kept per log: a peer cannot fill the disk


class StateMoved(Exception):
    """Another request moved the log's state since it was read: decide again."""


async def state(db: Database, origin: str, log_key: bytes) -> WitnessState:
    """The state of ``origin`` (size 0 when never cosigned), with the key pinned now."""
    row = await fetch_first(db, select(log_t).where(log_t.c.origin == origin))
    if row is None:
        return WitnessState(origin, log_key)
    return WitnessState(
        origin, log_key, int(row.size), bytes(row.root), int(row.cosigned_at), str(row.checkpoint)
    )


async def advance(
    db: Database, peer: str, old: WitnessState, new: WitnessState, now: datetime
) -> None:
    """Store ``new`` where ``old`` still holds; ``StateMoved`` where it does not."""
    values = {
        "size": new.size,
        "root": new.root,
        "cosigned_at": new.cosigned_at,
        "checkpoint": new.checkpoint,
        "updated_at": now,
    }
    # A first checkpoint inserted by another request first is an IntegrityError: StateMoved.
    async with transaction(db, conflict=StateMoved) as conn:
        if not old.checkpoint:
            await conn.execute(insert(log_t).values(origin=new.origin, peer=peer, **values))
            return
        result = await conn.execute(
            update(log_t)
            .where(
                and_(
                    log_t.c.origin == old.origin,
                    log_t.c.size == old.size,
                    log_t.c.root == old.root,
                )
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise StateMoved()


async def keep_evidence(
    db: Database,
    origin: str,
    peer: str,
    code: str,
    message: str,
    request: str,
    now: datetime,
    event: AuditEvent,
) -> bool:
    """Keep a refused request (once per distinct body, at most ``EVIDENCE_MAX_PER_LOG`` per
    log) and record ``event`` in the same transaction, so evidence is never kept unrecorded;
    True when it was new."""
    digest = hashlib.sha256(request.encode()).hexdigest()
    async with transaction(db) as conn:
        await audit_repo.lock_head(conn)
        held = (
            await conn.execute(
                select(func.count()).select_from(evidence_t).where(evidence_t.c.origin == origin)
            )
        ).scalar_one()
        seen = (
            await conn.execute(select(evidence_t.c.id).where(evidence_t.c.digest == digest))
        ).first()
        if seen is not None or held >= EVIDENCE_MAX_PER_LOG:
            return False
        await conn.execute(
            insert(evidence_t).values(
                origin=origin,
                peer=peer,
                code=code,
                message=message[:1000],
                digest=digest,
                request=request,
                created_at=now,
            )
        )
        await audit_repo.append(conn, [event])
    return True


async def evidence(db: Database, origin: str) -> list[dict[str, str]]:
    rows = await fetch_all(
        db, select(evidence_t).where(evidence_t.c.origin == origin).order_by(evidence_t.c.id)
    )
    return [{"code": r.code, "message": r.message, "request": r.request} for r in rows]


# -- the peers' cosignatures on this broker's own checkpoints ---------------------------------


async def latest_checkpoint(db: Database) -> tuple[int, str] | None:
    row = await fetch_first(
        db, select(checkpoint_t.c.size, checkpoint_t.c.note).order_by(checkpoint_t.c.size.desc())
    )
    return None if row is None else (int(row.size), str(row.note))


async def add_cosignature(db: Database, size: int, name: str, line: str) -> bool:
    """Append ``line`` (a verified cosignature by ``name``) to the stored checkpoint of ``size``,
    in place of an older line by the same witness; False when that checkpoint is gone."""
    async with transaction(db) as conn:
        # An UPDATE first: it takes the write lock, so two witnesses' answers never lose one.
        await conn.execute(
            update(checkpoint_t).where(checkpoint_t.c.size == size).values(size=checkpoint_t.c.size)
        )
        row = (
            await conn.execute(select(checkpoint_t.c.note).where(checkpoint_t.c.size == size))
        ).first()
        if row is None:
            return False
        text, _, signatures = str(row.note).partition("\n\n")
        kept = [s for s in signatures.splitlines() if not s.startswith(f"{DASH}{name} ")]
        note = text + "\n\n" + "".join(f"{s}\n" for s in kept) + line
        await conn.execute(
            update(checkpoint_t).where(checkpoint_t.c.size == size).values(note=note)
        )
    return True
