"""Expiry and retention: at ``expires_at`` or the end of its channel's retention, a notice's
ciphertext and every key wrap, the escrow wrap included, are destroyed (crypto-shredding).

The routing metadata and the audit log stay; the log records the destruction with the SHA-256
of each destroyed item. A recipient asking for a shredded notice gets 410 Gone.
"""

from __future__ import annotations

from datetime import datetime

from broker.audit.events import AuditEvent
from broker.logs import get_logger
from broker.store import Database
from broker.store import notices_repo as repo

log = get_logger("liaison.retention")


class Shredder:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def tick(self, now: datetime) -> int:
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
