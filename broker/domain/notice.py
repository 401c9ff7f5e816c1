"""What routing and authorization know of a notice: its metadata, never its contents."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

SEVERITIES = ("info", "low", "medium", "high", "critical")
# A notice marked as one of these routes as any other but is labelled on every surface, never
# escalates up a chain and is counted apart (README, "Exercise and test notices").
EXERCISES = ("exercise", "test")
# The audit events filter: events about notices so marked, or ("none") about none marked.
EXERCISE_FILTERS = (*EXERCISES, "none")


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
    exercise: str | None = None  # "exercise" or "test" (EXERCISES); None for a real notice


@dataclass(frozen=True, slots=True)
class StoredNotice:
    """A stored notice's metadata (never its contents)."""

    id: str
    sender: str
    channel: str
    jurisdiction: str
    severity: str
    marking: str
    policy_hash: str
    kind: str
    status: str
    created_at: datetime
    expires_at: datetime | None
    supersedes: str | None
    recipient_count: int
    addressees: tuple[str, ...] = ()
    requesting_role: str | None = None
    exercise: str | None = None
    reply_to_role: str | None = None  # an answer: the role that asked (its request's)

    def facts(self) -> NoticeFacts:
        """What policy sees of the notice: the facts intake decided on, every one of them."""
        return NoticeFacts(
            self.channel,
            self.jurisdiction,
            self.severity,
            self.sender,
            id=self.id,
            addressees=self.addressees,
            reply_to_role=self.reply_to_role,
            exercise=self.exercise,
        )


@dataclass(frozen=True, slots=True)
class DeliveryState:
    contact: str
    role: str
    jurisdiction: str
    rule: str
    deputy: bool
    state: str
    created_at: datetime
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    acked_at: datetime | None = None
    escalated_at: datetime | None = None


def new_notice_id(now: datetime) -> str:
    """Time-ordered and unguessable: 12 hex digits of milliseconds, then 80 random bits."""
    return f"{int(now.timestamp() * 1000):012x}{secrets.token_hex(10)}"


def ack_statement(notice_id: str, contact: str, content_digest: str) -> bytes:
    """What a recipient signs to acknowledge: bound to the exact content they decrypted."""
    return f"liaison-ack-v1\n{notice_id}\n{contact}\n{content_digest}".encode()
