"""What routing and authorization know of a notice: its metadata, never its contents."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """The routing metadata of a notice (draft or stored). Contents are not part of it."""

    channel: str
    jurisdiction: str
    severity: str
    sender: str  # organisation id of the posting agency
    id: str = "draft"
    addressees: tuple[str, ...] = ()  # organisations a notice is addressed to (`to`)
    reply_to_role: str | None = None  # the role that asked, when this notice answers a request
