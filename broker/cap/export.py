"""Export a verified notice as an OASIS CAP 1.2 alert (``liaison read --cap``).

Invariants:
- a notice imported from CAP exports as its carried original, byte for byte (its XML signature
  still verifies); any other notice is built from what the agency signed (subject, body,
  severity, jurisdiction, expiry), never from what the broker says about it, except the time the
  broker accepted it (``sent``) and the notice id (``identifier``), which the agency did not sign;
- every export is validated against the CAP 1.2 schema before it is returned: an export that
  would not validate raises CapError rather than print an invalid alert.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from broker.cap.document import NS, CapError, parse, serialise, validate
from broker.cap.mapping import EXERCISE_OF_STATUS, JURISDICTION_CODE, SEVERITY

STATUS_OF_EXERCISE = {marking: status for status, marking in EXERCISE_OF_STATUS.items()}

TO_CAP_SEVERITY = {ours: theirs for theirs, ours in SEVERITY.items()}
CATEGORIES = {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env"}
CATEGORIES |= {"Transport", "Infra", "CBRNE", "Other"}


def original(notice: dict[str, Any]) -> bytes | None:
    """The carried CAP original, checked like an import; None when the notice carries none."""
    body = notice.get("body")
    carried = body.get("cap_original") if isinstance(body, dict) else None
    if not isinstance(carried, str):
        return None
    try:
        data = base64.b64decode(carried, validate=True)
    except binascii.Error as e:
        raise CapError(f"body/cap_original: not base64: {e}") from e
    parse(data)  # the sender wrote it: schema-checked, no entities, before anyone reads it
    return data


def notice_to_cap(metadata: dict[str, Any], notice: dict[str, Any], sender: str) -> bytes:
    """The notice as a CAP 1.2 alert: the carried original when there is one, else built.

    ``sender`` is the agency's name as the administrators signed it (``senderName``)."""
    carried = original(notice)
    if carried is not None:
        return carried
    root = _build(metadata, notice, sender)
    validate(root)
    return serialise(root)


def _build(metadata: dict[str, Any], notice: dict[str, Any], sender: str) -> Any:
    given = notice.get("body")
    body: dict[str, Any] = given if isinstance(given, dict) else {}
    alert = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    kind = "Cancel" if notice.get("cancel") else ("Update" if notice.get("supersedes") else "Alert")
    _add(alert, "identifier", str(metadata.get("id") or ""))
    _add(alert, "sender", str(metadata.get("sender") or "unknown"))
    _add(alert, "sent", _cap_time(metadata.get("created_at")) or _cap_time(_now()) or "")
    _add(alert, "status", STATUS_OF_EXERCISE.get(str(notice.get("exercise")), "Actual"))
    _add(alert, "msgType", kind)
    _add(alert, "scope", "Restricted")
    _add(
        alert,
        "restriction",
        f"TLP:{metadata.get('marking', 'AMBER')}; Liaison channel {notice.get('channel')}",
    )
    if notice.get("supersedes"):
        _add(alert, "note", f"Supersedes Liaison notice {notice['supersedes']}")
    info = etree.SubElement(alert, f"{{{NS}}}info")
    categories = [c for c in body.get("category", []) if c in CATEGORIES] or ["Other"]
    for category in categories:
        _add(info, "category", category)
    _add(info, "event", str(body.get("event") or notice.get("channel") or "notice"))
    _add(info, "urgency", _enum(body.get("urgency"), {"Immediate", "Expected", "Future", "Past"}))
    _add(info, "severity", TO_CAP_SEVERITY.get(str(notice.get("severity")), "Unknown"))
    _add(
        info,
        "certainty",
        _enum(body.get("certainty"), {"Observed", "Likely", "Possible", "Unlikely"}),
    )
    if expires := _cap_time(notice.get("expires_at")):
        _add(info, "expires", expires)
    if sender:
        _add(info, "senderName", sender)
    _add(info, "headline", str(notice.get("subject") or ""))
    _add(info, "description", _description(body))
    area = etree.SubElement(info, f"{{{NS}}}area")
    _add(area, "areaDesc", str(body.get("area") or notice.get("jurisdiction") or ""))
    geocode = etree.SubElement(area, f"{{{NS}}}geocode")
    _add(geocode, "valueName", JURISDICTION_CODE)
    _add(geocode, "value", str(notice.get("jurisdiction") or ""))
    return alert


def _add(parent: Any, name: str, value: str) -> None:
    etree.SubElement(parent, f"{{{NS}}}{name}").text = value


def _enum(value: Any, allowed: set[str]) -> str:
    return value if value in allowed else "Unknown"


def _description(body: dict[str, Any]) -> str:
    """The body's own description, else the whole signed body as JSON (nothing dropped)."""
    if isinstance(body.get("description"), str) and len(body) <= 1:
        return str(body["description"])
    return json.dumps(body, ensure_ascii=False, sort_keys=True, indent=1)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _cap_time(value: Any) -> str | None:
    """CAP's date-time: seconds and a numeric offset (``-00:00`` style, never ``Z``)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.replace(microsecond=0).isoformat()
