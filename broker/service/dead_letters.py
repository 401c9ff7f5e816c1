"""Dead-lettered webhooks and e-mails, as the operator handles them (``liaison outbox``).

A message is dead-lettered after ``webhooks.max_attempts`` failures (or when its endpoint said
410, or its recipient may no longer read the notice). The operator lists them, replays one (it
becomes due again and the running broker's outbox worker sends it, under its original message
id, so a Standard Webhooks receiver that did get an earlier attempt discards the repeat) or drops
it with a reason. Invariants: each replay and drop is an audit event committed with the change,
about the message's notice (so it is placed in that notice's jurisdiction); a message that is
no longer dead (replayed or dropped by someone else meanwhile) is refused, never acted on twice.
"""

from __future__ import annotations

from datetime import datetime

from broker.audit.events import AuditEvent
from broker.errors import NotFound
from broker.store import Database, intake_repo, outbox_repo
from broker.store.outbox_repo import DeadLetter

REPLAYED = "outbox.replayed"
DROPPED = "outbox.dropped"


async def dead_letters(db: Database) -> list[DeadLetter]:
    return await outbox_repo.dead_letters(db)


async def replay(db: Database, outbox_id: int, actor: str, now: datetime) -> DeadLetter:
    """Make dead letter ``outbox_id`` due now; the running broker delivers it once."""
    letter = await _dead(db, outbox_id)
    event = await _event(db, letter, actor, now, REPLAYED, None)
    if not await outbox_repo.requeue_dead(db, outbox_id, now, [event]):
        raise _gone(outbox_id)
    return letter


async def drop(db: Database, outbox_id: int, actor: str, reason: str, now: datetime) -> DeadLetter:
    """Remove dead letter ``outbox_id`` for good; ``reason`` goes into the audit event."""
    letter = await _dead(db, outbox_id)
    event = await _event(db, letter, actor, now, DROPPED, reason)
    if not await outbox_repo.delete_dead(db, outbox_id, [event]):
        raise _gone(outbox_id)
    return letter


async def _dead(db: Database, outbox_id: int) -> DeadLetter:
    letter = await outbox_repo.dead_letter(db, outbox_id)
    if letter is None:
        raise _gone(outbox_id)
    return letter


def _gone(outbox_id: int) -> NotFound:
    return NotFound(f"no dead-lettered message {outbox_id} (see `liaison outbox list`)")


async def _event(
    db: Database, letter: DeadLetter, actor: str, now: datetime, action: str, reason: str | None
) -> AuditEvent:
    meta = await intake_repo.notice_columns(db, letter.notice_id, ["channel"])
    details: dict[str, object] = {
        "outbox_id": letter.id,
        "kind": letter.kind,
        "target": letter.target if letter.kind == "webhook" else "email",  # no address in the log
        "msg_id": letter.msg_id,
        "attempts": letter.attempts,
    }
    if reason is not None:
        details["reason"] = reason
    return AuditEvent(
        at=now,
        actor=actor,
        action=action,
        object=f"notice:{letter.notice_id}",
        channel=None if meta is None else meta["channel"],
        details=details,
    )
