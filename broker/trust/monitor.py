"""Key transparency: from the audit log, every key ever bound to an agency and every notice
signed in its name with a key it did not make. Pure: events in, a report out.

A key counts as *unexpected* when the agency listed the keys it made (``expected``) and this
one is not among them. A notice is *suspect* when its signing key was never bound to the agency
by a logged ``directory.applied`` event (a key inserted into the store behind the log's back) or
is unexpected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class BoundKey:
    key_id: str
    type: str
    fingerprint: str
    history: tuple[tuple[int, str, str], ...]  # (seq, at, status) for each logged change


@dataclass(frozen=True, slots=True)
class SignedNotice:
    seq: int
    at: str
    notice: str
    key_id: str
    reason: str  # why it is listed: "never bound in the log" or "not a key the agency made"


@dataclass
class MonitorReport:
    agency: str
    keys: dict[str, BoundKey] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    suspect: list[SignedNotice] = field(default_factory=list)

    @property
    def alarm(self) -> bool:
        return bool(self.unexpected or self.suspect)


def monitor(
    events: Iterable[Mapping[str, Any]], agency: str, expected: set[str] | None = None
) -> MonitorReport:
    """Walk the log once, in order; ``expected`` None means only the never-bound check."""
    report = MonitorReport(agency)
    for event in events:
        details = event.get("details") or {}
        if event.get("action") == "directory.applied":
            for key in details.get("keys") or []:
                if key.get("owner") == agency:
                    _bind(report, event, key)
        elif event.get("action") == "notice.posted" and event.get("actor") == f"agency:{agency}":
            key_id = str(details.get("sender_key", ""))
            reason = _suspicion(report, key_id, expected)
            if reason:
                report.suspect.append(
                    SignedNotice(
                        int(event["seq"]), str(event["at"]), str(event["object"]), key_id, reason
                    )
                )
    if expected is not None:
        report.unexpected = sorted(k for k in report.keys if k not in expected)
    return report


def _bind(report: MonitorReport, event: Mapping[str, Any], key: Mapping[str, Any]) -> None:
    key_id = str(key["id"])
    change = (int(event["seq"]), str(event["at"]), str(key.get("status", "")))
    known = report.keys.get(key_id)
    history = (*known.history, change) if known else (change,)
    report.keys[key_id] = BoundKey(
        key_id, str(key.get("type", "")), str(key.get("fingerprint", "")), history
    )


def _suspicion(report: MonitorReport, key_id: str, expected: set[str] | None) -> str:
    if key_id not in report.keys:
        return "never bound in the log"
    if expected is not None and key_id not in expected:
        return "not a key the agency made"
    return ""
