"""A status report across a border: what the receiving broker tells the sender, and how the
sender merges it. Pure: plain data in, plain data out, time passed in.

Invariants:
- a report carries role ids, jurisdiction ids, states, counts and times, and nothing else: no
  contact, no person, no key, no plaintext. ``parse_report`` refuses any other field, so a peer
  cannot make this broker store more than that; the one addition is ``replies``, the recipients'
  replies sealed for the sending agency (``federation/replies.py``: role, time, key id and sealed
  bytes, still no person);
- a reply id is merged once (``reply_ids``): a report repeated or late adds no second reply;
- merging is monotonic: a role's state only moves forward (``STATE_ORDER``), its times keep the
  earliest value seen, a role once reported stays; so reports may arrive late, twice or out of
  order and the sender's view never goes back;
- the notice's status (active, superseded, cancelled, expired) is the newest report's;
- each move forward is one transition, audited on the sending side as ``notice.<state>_abroad``
  (and ``notice.routed_abroad`` for a role first reported).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.domain.notice import DeliveryState
from broker.errors import BadRequest
from broker.federation.replies import crossing_replies, parse_replies

STATE_ORDER = ("pending", "delivered", "read", "acknowledged", "escalated")
TIMES = ("delivered_at", "read_at", "acknowledged_at", "escalated_at")
ROLE_FIELDS = {"role", "jurisdiction", "state", "recipients", *TIMES}
REPORT_FIELDS = {"notice_id", "reporter_notice_id", "as_of", "status", "roles"}
OPTIONAL_FIELDS = {"replies"}
STATUSES = ("active", "superseded", "cancelled", "expired")
MAX_ROLES = 256
MAX_ID = 128


@dataclass(frozen=True, slots=True)
class Transition:
    """One role moving forward on the foreign side: ``state`` reached (``routed``: first seen)."""

    role: str
    jurisdiction: str
    state: str
    at: str | None


def snapshot(
    deliveries: Sequence[DeliveryState], status: str, replies: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The per-role state of a received notice, as reported: one entry per (role, jurisdiction)."""
    groups: dict[tuple[str, str], list[DeliveryState]] = {}
    for d in deliveries:
        groups.setdefault((d.role, d.jurisdiction), []).append(d)
    roles = [
        {
            "role": role,
            "jurisdiction": jurisdiction,
            "state": max((d.state for d in items), key=_rank),
            "recipients": len(items),
            "delivered_at": _first(d.delivered_at for d in items),
            "read_at": _first(d.read_at for d in items),
            "acknowledged_at": _first(d.acked_at for d in items),
            "escalated_at": _first(d.escalated_at for d in items),
        }
        for (role, jurisdiction), items in sorted(groups.items())
    ]
    state: dict[str, Any] = {"status": status, "roles": roles}
    if replies:
        state["replies"] = crossing_replies(replies)
    return state


def digest(state: dict[str, Any]) -> str:
    """What identifies a snapshot's content (not its time): a report is due when it changes."""
    content: dict[str, Any] = {"status": state["status"], "roles": state["roles"]}
    if state.get("replies"):
        content["replies"] = sorted(r["id"] for r in state["replies"])
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_report(payload: Any) -> dict[str, Any]:
    """The report as sent, checked field by field; ``BadRequest`` for anything else."""
    if not isinstance(payload, dict) or not REPORT_FIELDS <= set(payload) <= (
        REPORT_FIELDS | OPTIONAL_FIELDS
    ):
        raise BadRequest(
            f"a status report has exactly {', '.join(sorted(REPORT_FIELDS))} (and replies)"
        )
    if "replies" in payload:
        parse_replies(payload["replies"])
    for name in ("notice_id", "reporter_notice_id"):
        _identifier(payload[name], name)
    _time(payload["as_of"], "as_of")
    if payload["status"] not in STATUSES:
        raise BadRequest("a status report's status is one of " + ", ".join(STATUSES))
    roles = payload["roles"]
    if not isinstance(roles, list) or len(roles) > MAX_ROLES:
        raise BadRequest(f"a status report lists at most {MAX_ROLES} roles")
    for role in roles:
        _role(role)
    return payload


def merge(
    stored: dict[str, Any] | None, report: dict[str, Any]
) -> tuple[dict[str, Any], list[Transition]]:
    """The sender's view after ``report``, and every role that moved forward."""
    previous = stored or {"as_of": None, "status": "active", "roles": []}
    by_key = {(r["role"], r["jurisdiction"]): dict(r) for r in previous["roles"]}
    transitions: list[Transition] = []
    for new in report["roles"]:
        key = (new["role"], new["jurisdiction"])
        old = by_key.get(key)
        if old is None:
            by_key[key] = dict(new)
            transitions.append(Transition(*key, "routed", None))
            old = {"state": "pending"}
        else:
            by_key[key] = _merged_role(old, new)
        if _rank(by_key[key]["state"]) > _rank(old["state"]):
            state = by_key[key]["state"]
            transitions.append(Transition(*key, state, by_key[key].get(f"{state}_at")))
    newer = previous["as_of"] is None or _moment(report["as_of"]) >= _moment(previous["as_of"])
    merged = {
        "as_of": report["as_of"] if newer else previous["as_of"],
        "status": report["status"] if newer else previous["status"],
        "reporter_notice_id": report["reporter_notice_id"],
        "roles": [by_key[k] for k in sorted(by_key)],
    }
    seen = {*previous.get("reply_ids", ()), *(r["id"] for r in report.get("replies", ()))}
    if seen:
        merged["reply_ids"] = sorted(seen)
    return merged, transitions


def _merged_role(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    merged["state"] = max(old["state"], new["state"], key=_rank)
    merged["recipients"] = max(int(old["recipients"]), int(new["recipients"]))
    for name in TIMES:
        present = [t for t in (old.get(name), new.get(name)) if t is not None]
        merged[name] = min(present, key=_moment) if present else None
    return merged


def _role(role: Any) -> None:
    if not isinstance(role, dict) or set(role) != ROLE_FIELDS:
        raise BadRequest(f"a reported role has exactly {', '.join(sorted(ROLE_FIELDS))}")
    _identifier(role["role"], "role")
    _identifier(role["jurisdiction"], "jurisdiction")
    if role["state"] not in STATE_ORDER:
        raise BadRequest("a reported role's state is one of " + ", ".join(STATE_ORDER))
    count = role["recipients"]
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 10_000:
        raise BadRequest("a reported role's recipients is a count")
    for name in TIMES:
        if role[name] is not None:
            _time(role[name], name)


def _identifier(value: Any, name: str) -> None:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_ID
        or not value.isascii()
        or not value.isprintable()
        or " " in value
    ):
        raise BadRequest(f"a status report's {name} is an identifier")


def _time(value: Any, name: str) -> None:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or len(value) > 40:
        raise BadRequest(f"a status report's {name} is a time with a zone")


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)  # checked by parse_report


def _rank(state: str) -> int:
    return STATE_ORDER.index(state)


def _first(values: Any) -> str | None:
    present = [v for v in values if v is not None]
    return _iso(min(present)) if present else None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
