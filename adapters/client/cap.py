"""Import OASIS CAP 1.2 alerts as notices.

Mapping (every refusal names the element):
- only ``scope`` Restricted or Private (public warnings do not belong in a restricted broker) and
  ``status`` Actual; ``msgType`` Alert, or Update/Cancel with the notice it supersedes given;
- the jurisdiction comes from an ``area/geocode`` whose ``valueName`` is ``liaison-jurisdiction``;
- severity: Extreme → critical, Severe → high, Moderate → medium, Minor → low, Unknown → info;
- ``headline`` is the subject; event, category, urgency, certainty, description, instruction and
  areaDesc go into the body; ``expires`` becomes ``expires_at``;
- any other element is refused rather than dropped silently (data minimisation: extend the
  mapping deliberately), as are alerts with more than one ``info`` block.
XML is parsed with defusedxml: no entity expansion, no external fetches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeXML
from defusedxml.common import DefusedXmlException

NS = "urn:oasis:names:tc:emergency:cap:1.2"
JURISDICTION_CODE = "liaison-jurisdiction"
SEVERITY = {
    "Extreme": "critical",
    "Severe": "high",
    "Moderate": "medium",
    "Minor": "low",
    "Unknown": "info",
}
ALERT_ELEMENTS = {
    "identifier",
    "sender",
    "sent",
    "status",
    "msgType",
    "source",
    "scope",
    "restriction",
    "addresses",
    "code",
    "note",
    "references",
    "incidents",
    "info",
}
INFO_ELEMENTS = {
    "language",
    "category",
    "event",
    "urgency",
    "severity",
    "certainty",
    "effective",
    "onset",
    "expires",
    "senderName",
    "headline",
    "description",
    "instruction",
    "area",
}
AREA_ELEMENTS = {"areaDesc", "geocode"}
MAX_BYTES = 256 * 1024


class CapError(Exception):
    """The alert cannot be imported; the message names the element and the reason."""


def _local(element: Element) -> str:
    tag = element.tag
    if not tag.startswith(f"{{{NS}}}"):
        raise CapError(f"element {tag!r} is not in the CAP 1.2 namespace")
    return tag[len(NS) + 2 :]


def _children(element: Element, allowed: set[str], where: str) -> dict[str, list[Element]]:
    found: dict[str, list[Element]] = {}
    for child in element:
        name = _local(child)
        if name not in allowed:
            raise CapError(
                f"{where}/{name}: not mapped to any notice field (remove it, or extend the mapping)"
            )
        found.setdefault(name, []).append(child)
    return found


def _text(
    found: dict[str, list[Element]], name: str, where: str, *, required: bool = True
) -> str | None:
    elements = found.get(name, [])
    if not elements:
        if required:
            raise CapError(f"{where}/{name}: missing")
        return None
    return (elements[0].text or "").strip()


def cap_to_notice(
    data: bytes, *, channel: str = "public-safety-alert", supersedes: str | None = None
) -> dict[str, Any]:
    """The notice a CAP 1.2 alert becomes, ready for ``POST /v1/notices``."""
    alert = _alert(data)
    msg_type = _message_type(alert, supersedes)
    infos = alert.get("info", [])
    if len(infos) != 1:
        raise CapError(f"alert/info: {len(infos)} blocks; exactly one is imported")
    info = _children(infos[0], INFO_ELEMENTS, "alert/info")
    areas = info.get("area", [])
    if not areas:
        raise CapError("alert/info/area: missing")
    jurisdiction, area_desc = _jurisdiction(areas)
    severity = _text(info, "severity", "alert/info")
    if severity not in SEVERITY:
        raise CapError(f"alert/info/severity: {severity!r} is not a CAP severity")
    body = _body(alert, info, area_desc)
    notice: dict[str, Any] = {
        "channel": channel,
        "jurisdiction": jurisdiction,
        "severity": SEVERITY[severity],
        "subject": _text(info, "headline", "alert/info") or "",
        "body": body,
        "idempotency_key": f"cap:{body['cap_sender']}:{body['cap_identifier']}"[:128],
    }
    if not notice["subject"]:
        raise CapError("alert/info/headline: empty; it becomes the notice's subject")
    _set_expiry(notice, info)
    if supersedes is not None:
        notice["supersedes"] = supersedes
        if msg_type == "Cancel":
            notice["cancel"] = True
            notice["body"] = {}
    return notice


def _alert(data: bytes) -> dict[str, list[Element]]:
    """The alert's elements, after the checks that refuse the document as a whole."""
    if len(data) > MAX_BYTES:
        raise CapError(f"the alert is over {MAX_BYTES} bytes")
    try:
        root = SafeXML.fromstring(data)
    except (SafeXML.ParseError, DefusedXmlException) as e:
        raise CapError(f"not valid XML: {e}") from e
    if _local(root) != "alert":
        raise CapError("the document is not a CAP alert")
    alert = _children(root, ALERT_ELEMENTS, "alert")
    scope = _text(alert, "scope", "alert")
    if scope not in ("Restricted", "Private"):
        raise CapError(f"alert/scope: {scope!r}; only Restricted or Private alerts are imported")
    status = _text(alert, "status", "alert")
    if status != "Actual":
        raise CapError(f"alert/status: {status!r}; only Actual alerts are posted")
    return alert


def _message_type(alert: dict[str, list[Element]], supersedes: str | None) -> str:
    msg_type = _text(alert, "msgType", "alert")
    if msg_type not in ("Alert", "Update", "Cancel"):
        raise CapError(f"alert/msgType: {msg_type!r} is not imported")
    if msg_type != "Alert" and supersedes is None:
        raise CapError(
            f"alert/msgType: {msg_type} needs the Liaison notice it supersedes (--supersedes)"
        )
    return str(msg_type)


def _body(
    alert: dict[str, list[Element]], info: dict[str, list[Element]], area_desc: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": _text(info, "event", "alert/info"),
        "urgency": _text(info, "urgency", "alert/info"),
        "certainty": _text(info, "certainty", "alert/info"),
        "cap_identifier": _text(alert, "identifier", "alert"),
        "cap_sender": _text(alert, "sender", "alert"),
    }
    if info.get("category"):
        body["category"] = sorted({(c.text or "").strip() for c in info["category"]})
    for name in ("description", "instruction"):
        value = _text(info, name, "alert/info", required=False)
        if value:
            body[name] = value
    if area_desc:
        body["area"] = area_desc
    return body


def _set_expiry(notice: dict[str, Any], info: dict[str, list[Element]]) -> None:
    expires = _text(info, "expires", "alert/info", required=False)
    if expires:
        try:
            notice["expires_at"] = datetime.fromisoformat(expires).isoformat()
        except ValueError as e:
            raise CapError(f"alert/info/expires: not a CAP date-time: {expires!r}") from e


def _jurisdiction(areas: list[Element]) -> tuple[str, str | None]:
    codes: set[str] = set()
    descriptions = []
    for area in areas:
        found = _children(area, AREA_ELEMENTS, "alert/info/area")
        descriptions.append(_text(found, "areaDesc", "alert/info/area") or "")
        for geocode in found.get("geocode", []):
            parts = {_local(c): (c.text or "").strip() for c in geocode}
            if parts.get("valueName") == JURISDICTION_CODE and parts.get("value"):
                codes.add(parts["value"])
    if len(codes) != 1:
        where = ", ".join(d for d in descriptions if d) or "the alert's area"
        raise CapError(
            f"alert/info/area: {where!r} is not mapped to one Liaison jurisdiction "
            f"(add a geocode with valueName {JURISDICTION_CODE!r})"
        )
    return codes.pop(), "; ".join(d for d in descriptions if d) or None
