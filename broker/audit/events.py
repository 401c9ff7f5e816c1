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

import orjson

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
    return _dumps(record)


# orjson writes what json.dumps(separators=(",", ":"), ensure_ascii=False) writes for str, exact
# int and bool, None, and list, tuple and dict (str keys) of those; it writes floats differently
# ("1e16", NaN as null) and datetimes, dataclasses and subclasses where json refuses. So only a
# record made of the listed types goes to orjson (which still refuses ints beyond 64 bits and lone
# surrogates); anything else is json's to write or refuse: the bytes of the log never depend on
# which encoder wrote them (tests/unit/test_audit_canonical.py).
_PLAIN = frozenset((str, int, bool, type(None)))


def _dumps(record: dict[str, Any]) -> bytes:
    if _orjson_safe(record):
        try:
            return orjson.dumps(record)
        except orjson.JSONEncodeError:
            pass  # an int beyond 64 bits, a lone surrogate: json decides (and may refuse)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def _orjson_safe(value: Any) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        return all(type(k) is str and _orjson_safe(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_orjson_safe(v) for v in value)
    return False


def recanonical(record: dict[str, Any]) -> bytes:
    """Bytes of a record parsed from canonical JSON (key order kept), for clients of the API."""
    return _dumps({k: record[k] for k in FIELDS})
