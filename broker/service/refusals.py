"""Refusals of unauthenticated requests: counted in memory, written to the audit log in summary.

Attacker: anyone who can reach the broker and holds no credential (THREATS.md, the network
attacker). Were every refusal a durable audit write of its own, each bad request would cost a
commit: 124 requests a second from one client were 124 audit rows a second, an amplifier against
the disk, the commit path and the log every auditor must read.

Invariants:
- The caller's answer does not change: the same 401, whatever is recorded.
- In one interval, the first refusal of each key (action, reason code, source) is written at once
  with its detail, so a crash before the summary loses counts, never the fact that a source was
  refused nor the first reason why. At most ``max_sources`` keys are tracked per interval; any
  further key is counted under ``other`` and never written alone. An interval therefore writes at
  most ``max_sources + 1`` rows, however many refusals it saw.
- ``flush`` writes one ``auth.refused_summary`` event holding every count of the interval and
  their total; nothing counted is dropped (a summary the store refused is counted again next).
- The core (``RefusalCounter``) does no I/O; time is passed in.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime

from broker.audit.events import AuditEvent
from broker.errors import AuthenticationFailed, StoreError
from broker.store import Database, audit_repo

OTHER = "other"
Key = tuple[str, str, str]  # action, reason code, source


@dataclass
class RefusalCounter:
    """Counts per key for one interval; says which refusal is the first of its key."""

    max_sources: int
    counts: dict[Key, int] = field(default_factory=dict)
    since: datetime | None = None

    def note(self, key: Key, now: datetime) -> bool:
        """Count one refusal; True when it is the first of a newly tracked key."""
        self.since = self.since or now
        if key in self.counts:
            self.counts[key] += 1
            return False
        if len(self.counts) >= self.max_sources:
            overflow = (key[0], key[1], OTHER)
            self.counts[overflow] = self.counts.get(overflow, 0) + 1
            return False
        self.counts[key] = 1
        return True

    def restore(self, summary: AuditEvent) -> None:
        """Put a summary that could not be written back into the counts (a store outage)."""
        for c in summary.details["counts"]:
            key = (c["action"], c["reason"], c["source"])
            self.counts[key] = self.counts.get(key, 0) + c["count"]
        self.since = min(self.since or summary.at, datetime.fromisoformat(summary.details["from"]))

    def take(self, now: datetime) -> AuditEvent | None:
        """The summary of the interval so far (None when nothing was refused), and a new one."""
        if not self.counts:
            return None
        counts = [
            {"action": a, "reason": r, "source": s, "count": n}
            for (a, r, s), n in sorted(self.counts.items())
        ]
        since, total = self.since or now, sum(self.counts.values())
        self.counts, self.since = {}, None
        return AuditEvent(
            at=now,
            actor="broker",
            action="auth.refused_summary",
            object="refusals:-",
            outcome="refused",
            reason="authentication_failed",
            details={
                "from": since.isoformat(),
                "until": now.isoformat(),
                "total": total,
                "counts": counts,
            },
            request=None,
        )


class Refusals:
    """The audit side of unauthenticated refusals, shared by intake, tokens and bearer auth."""

    def __init__(self, db: Database, *, max_sources: int) -> None:
        self.db = db
        self.counter = RefusalCounter(max_sources)
        self._lock = asyncio.Lock()

    async def refused(self, event: AuditEvent, source: str, error: AuthenticationFailed) -> None:
        """Count ``event``; write it alone only when it is the first of its key this interval."""
        error.recorded = True
        source = source[:64]
        if self.counter.note((event.action, event.reason or "-", source), event.at):
            details = {**event.details, "source": source, "first_of_interval": True}
            await audit_repo.append_events(self.db, [replace(event, details=details)])

    async def flush(self, now: datetime) -> None:
        async with self._lock:
            summary = self.counter.take(now)
            if summary is None:
                return
            try:
                await audit_repo.append_events(self.db, [summary])
            except StoreError:
                self.counter.restore(summary)  # counted in the next summary, never dropped
                raise
