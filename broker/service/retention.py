"""Expiry and retention: at ``expires_at`` or the end of its channel's retention, a notice's
ciphertext and every key wrap, the escrow wrap included, are destroyed (crypto-shredding).

The routing metadata and the audit log stay; the log records the destruction with the SHA-256
of each destroyed item. A recipient asking for a shredded notice gets 410 Gone (and so does one
asking after ``expires_at`` before the shredder has run: ``service/recipients.py``).

Invariant: after a round that shredded something, the store's history is purged
(``store.engine.purge_history``: on SQLite the WAL is checkpointed and truncated, with
``secure_delete`` on every connection, so no byte of a destroyed item is left in any file of the
data directory; on PostgreSQL that takes a table rewrite the operator schedules); a purge that
could not finish (a reader held an old snapshot) is retried on every round until it does.
"""

from __future__ import annotations

from datetime import datetime

from broker.audit.events import AuditEvent
from broker.logs import get_logger
from broker.store import Database
from broker.store import retention_repo as repo
from broker.store.engine import purge_history

log = get_logger("liaison.retention")


class Shredder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.unpurged = False  # something was shredded whose old page images may remain

    async def tick(self, now: datetime) -> int:
        shredded = await self._shred_due(now)
        if shredded or self.unpurged:
            self.unpurged = True
            await self._purge()
        return shredded

    async def _purge(self) -> None:
        outcome = await purge_history(self.db)
        self.unpurged = outcome == "busy"
        if self.unpurged:
            log.warning("shred_purge_busy")
        else:
            log.info("shred_purged", outcome=outcome)

    async def _shred_due(self, now: datetime) -> int:
        shredded = 0
        for notice_id, channel, reason in await repo.due_for_shredding(self.db, now):

            def events(
                hashes: dict[str, str],
                notice_id: str = notice_id,
                channel: str = channel,
                reason: str = reason,
            ) -> list[AuditEvent]:
                obj = f"notice:{notice_id}"
                return [
                    AuditEvent(
                        at=now,
                        actor="broker",
                        action=f"notice.{reason}",
                        object=obj,
                        channel=channel,
                    ),
                    AuditEvent(
                        at=now,
                        actor="broker",
                        action="notice.shredded",
                        object=obj,
                        channel=channel,
                        reason=reason,
                        details={"destroyed_sha256": hashes},
                    ),
                ]

            if await repo.shred(self.db, notice_id, now, events):
                shredded += 1
                log.info("notice_shredded", notice_id=notice_id, reason=reason)
        return shredded
