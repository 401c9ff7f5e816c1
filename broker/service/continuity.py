"""The continuity report: the directory and channels in force, and the notices now overdue."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from broker.directory.continuity import Overdue, report
from broker.domain.directory import Directory
from broker.errors import NotFound
from broker.policy.channel import Channel
from broker.store import Database, continuity_repo


async def overdue_notices(
    db: Database, channels: Mapping[str, Channel], now: datetime
) -> list[Overdue]:
    """(notice, role) pairs past the channel's acknowledgement deadline with no acknowledgement."""
    out = []
    for u in await continuity_repo.unacknowledged(db):
        channel = channels.get(u.channel)
        if channel is None or not channel.ack_deadline_hours:
            continue
        deadline = u.delivered_at + timedelta(hours=channel.ack_deadline_hours)
        if deadline <= now:
            out.append(Overdue(u.notice_id, u.role, u.channel, deadline, u.exercise))
    return out


async def continuity_report(
    db: Database,
    directory: Directory,
    channels: Mapping[str, Channel],
    now: datetime,
    *,
    jurisdiction: str | None = None,
    language: str | None = None,
) -> list[dict[str, Any]]:
    if jurisdiction is not None and jurisdiction not in directory.jurisdictions:
        raise NotFound(f"no jurisdiction {jurisdiction!r} in the directory")
    overdue = await overdue_notices(db, channels, now)
    return report(
        directory, channels, now, overdue=overdue, jurisdiction=jurisdiction, language=language
    )
