"""Audit events and their canonical bytes: exactly what is hashed, stored and exported.

Invariants: an event never holds notice contents (no subject, body, ciphertext, wrap or key);
its canonical form is one line of JSON with a fixed key order, ``seq`` first and ``prev`` (the
leaf hash of the event before it) second, so a verifier can check order and chain without
parsing the rest. The same bytes are the Merkle leaf data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

GENESIS = "0" * 64
FIELDS = (
    "seq",
    "prev",
    "at",
    "actor",
    "action",
    "object",
    "channel",
    "decision",
    "policies",
    "request",
    "outcome",
    "reason",
    "details",
)


@dataclass(frozen=True)
class AuditEvent:
    """One recorded action, before it has a place in the log."""

    at: datetime
    actor: str  # "agency:mk-mvr", "contact:mk-kumanovo-pcve", "operator:root", "broker", "unknown"
    action: str  # "notice.posted", "notice.routed", "delivery.acknowledged", ...
    object: str  # "notice:<id>", "directory:<revision>", "policy:<hash>", ...
    outcome: str = "ok"  # ok | refused | failed
    channel: str | None = None
    decision: str | None = None  # allow | deny, for decisions
    policies: tuple[str, ...] = ()
    reason: str | None = None  # a stable code, for refusals
    details: dict[str, Any] = field(default_factory=dict)
    # The id of the request that caused it, passed by the caller (through every queue); None
    # for the broker's own background work. Never read from ambient (logging) context.
    request: str | None = None

    @property
    def notice_id(self) -> str | None:
        return self.object.removeprefix("notice:") if self.object.startswith("notice:") else None


def canonical(event: AuditEvent, seq: int, prev: str) -> bytes:
    """The event's one-line canonical JSON (UTF-8): the Merkle leaf data and the export line."""
    record = {
        "seq": seq,
        "prev": prev,
        "at": event.at.isoformat().replace("+00:00", "Z"),
        "actor": event.actor,
        "action": event.action,
        "object": event.object,
        "channel": event.channel,
        "decision": event.decision,
        "policies": list(event.policies),
        "request": event.request,
        "outcome": event.outcome,
        "reason": event.reason,
        "details": event.details,
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def recanonical(record: dict[str, Any]) -> bytes:
    """Bytes of a record parsed from canonical JSON (key order kept), for clients of the API."""
    return json.dumps(
        {k: record[k] for k in FIELDS}, separators=(",", ":"), ensure_ascii=False
    ).encode()
