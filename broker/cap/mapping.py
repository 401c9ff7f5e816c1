"""Import OASIS CAP 1.2 alerts as notices, without losing any element.

Every element of a valid CAP 1.2 alert is kept: the ones Liaison has a field for are mapped
(README, "CAP 1.2"), and the original document, byte for byte with any XML signature, travels
base64-encoded in the notice body (``cap_original``), so it is encrypted with the notice and only
recipients read it. Mapping:
- ``scope`` Restricted or Private only (public warnings belong on public warning systems);
  ``status`` Actual, Exercise or Test (carried as ``cap_status``; Exercise and Test also give
  the notice its ``exercise`` marking, so it is labelled and never escalated; System and Draft
  are not notices); ``msgType`` Alert, or Update/Cancel with the notice it supersedes given;
- the jurisdiction comes from the ``area/geocode`` entries whose ``valueName`` is
  ``liaison-jurisdiction`` (one code over all info blocks); ``polygon`` and ``circle`` are carried
  but never routed on: the directory holds no geometry to resolve them, so an alert that has only
  those is refused by name;
- severity: the highest over the info blocks (Extreme → critical, Severe → high, Moderate →
  medium, Minor → low, Unknown → info); the first info block gives the subject (``headline``,
  else ``event``), the body fields and ``expires_at``; every block's language is listed;
- any document the CAP 1.2 schema refuses is refused with the element and line it names.
Parsing: ``cap_xml`` (no entity expansion, no external fetches). XML-DSig: ``cap_dsig``.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from broker.cap.document import NS, CapError, pairs, parse, text, texts
from broker.cap.dsig import verify_signature

__all__ = ["CAP_MEDIA_TYPE", "JURISDICTION_CODE", "CapError", "cap_document", "cap_to_notice"]

JURISDICTION_CODE = "liaison-jurisdiction"
CAP_MEDIA_TYPE = "application/cap+xml"
SEVERITY = {
    "Extreme": "critical",
    "Severe": "high",
    "Moderate": "medium",
    "Minor": "low",
    "Unknown": "info",
}
RANK = list(SEVERITY)  # most severe first
STATUSES = ("Actual", "Exercise", "Test")
# CAP status -> the notice's exercise marking (an Actual alert has none); export reverses it.
EXERCISE_OF_STATUS = {"Exercise": "exercise", "Test": "test"}
# Alert-level optional elements, carried under a cap_ name (the spelling of the README table).
ALERT_TEXT = {
    "source": "cap_source",
    "restriction": "cap_restriction",
    "addresses": "cap_addresses",
    "note": "cap_note",
    "references": "cap_references",
    "incidents": "cap_incidents",
}
INFO_TEXT = {
    "language": "language",
    "audience": "audience",
    "effective": "effective",
    "onset": "onset",
    "senderName": "sender_name",
    "description": "description",
    "instruction": "instruction",
    "web": "web",
    "contact": "contact",
}


def cap_to_notice(
    data: bytes, *, channel: str = "public-safety-alert", supersedes: str | None = None
) -> dict[str, Any]:
    """The notice a CAP 1.2 alert becomes, ready for ``POST /v1/notices``."""
    root = parse(data)
    msg_type = _checked_alert(root, supersedes)
    infos = root.findall(f"{{{NS}}}info")
    if not infos:
        raise CapError("alert/info: missing; an alert without info has nothing to notify")
    first = infos[0]
    body = {**_alert_fields(root), **_info_fields(first, infos)}
    body["cap_original"] = base64.b64encode(data).decode()
    body["cap_signature"] = verify_signature(data, root)
    subject = text(first, "headline") or text(first, "event") or ""
    notice: dict[str, Any] = {
        "channel": channel,
        "jurisdiction": _jurisdiction(infos),
        "severity": SEVERITY[_worst(infos)],
        "subject": subject,
        "body": body,
        "idempotency_key": f"cap:{body['cap_sender']}:{body['cap_identifier']}"[:128],
    }
    if marking := EXERCISE_OF_STATUS.get(str(body["cap_status"])):
        notice["exercise"] = marking  # labelled everywhere, never escalated (README)
    _set_expiry(notice, first)
    if supersedes is not None:
        notice["supersedes"] = supersedes
        if msg_type == "Cancel":
            notice["cancel"] = True  # the body stays: the Cancel's own text and original
    return notice


def cap_document(
    data: bytes, target_uri: str, covered: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The notice an alert posted as ``application/cap+xml`` stands for, on the broker and on the
    recipient's device alike: the channel is ``public-safety-alert``, and the only query
    parameter, ``supersedes``, names the notice an Update or Cancel replaces. ``covered`` (the
    signature's components, on the broker) must cover the query when one is given,
    so that nobody between the agency and the recipient can change what the alert supersedes."""
    query = parse_qs(urlsplit(target_uri).query, keep_blank_values=True)
    unknown = sorted(set(query) - {"supersedes"})
    if unknown:
        raise CapError(f"query parameter {unknown[0]!r}: not accepted with a CAP alert")
    if len(query.get("supersedes", [])) > 1:
        raise CapError("query parameter 'supersedes': given more than once")
    supersedes = query["supersedes"][0] if query.get("supersedes") else None
    if (
        supersedes is not None
        and covered is not None
        and not {"@target-uri", "@query"} & set(covered)
    ):
        # authentication refuses an uncovered query already; this keeps the rule local too
        raise CapError("query parameter 'supersedes': the signature must cover the query")
    return cap_to_notice(data, supersedes=supersedes)


def _checked_alert(root: Any, supersedes: str | None) -> str:
    scope = text(root, "scope")
    if scope not in ("Restricted", "Private"):
        raise CapError(f"alert/scope: {scope!r}; only Restricted or Private alerts are imported")
    status = text(root, "status")
    if status not in STATUSES:
        raise CapError(
            f"alert/status: {status!r}; only Actual, Exercise and Test alerts are notices"
        )
    msg_type = text(root, "msgType")
    if msg_type not in ("Alert", "Update", "Cancel"):
        raise CapError(f"alert/msgType: {msg_type!r}; only Alert, Update and Cancel are imported")
    if msg_type != "Alert" and supersedes is None:
        raise CapError(
            f"alert/msgType: {msg_type} needs the Liaison notice it supersedes (--supersedes)"
        )
    return str(msg_type)


def _alert_fields(root: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cap_identifier": text(root, "identifier"),
        "cap_sender": text(root, "sender"),
        "cap_sent": text(root, "sent"),
        "cap_status": text(root, "status"),
        "cap_msg_type": text(root, "msgType"),
        "cap_scope": text(root, "scope"),
    }
    for element, field in ALERT_TEXT.items():
        value = text(root, element)
        if value:
            body[field] = value
    if codes := [c for c in texts(root, "code") if c]:
        body["cap_code"] = codes
    return body


def _info_fields(info: Any, infos: list[Any]) -> dict[str, Any]:
    """The first info block's fields; the others are in the carried original."""
    body: dict[str, Any] = {
        "event": text(info, "event"),
        "urgency": text(info, "urgency"),
        "certainty": text(info, "certainty"),
        "category": sorted(set(texts(info, "category"))),
    }
    for element, field in INFO_TEXT.items():
        value = text(info, element)
        if value:
            body[field] = value
    if responses := texts(info, "responseType"):
        body["response_type"] = responses
    for element, field in (("eventCode", "event_code"), ("parameter", "parameter")):
        if named := pairs(info, element):
            body[field] = named
    areas = [text(a, "areaDesc") or "" for a in info.findall(f"{{{NS}}}area")]
    if any(areas):
        body["area"] = "; ".join(a for a in areas if a)
    if len(infos) > 1:
        body["languages"] = [text(i, "language") or "en-US" for i in infos]
    return body


def _worst(infos: list[Any]) -> str:
    return min((text(i, "severity") or "Unknown" for i in infos), key=RANK.index)


def _set_expiry(notice: dict[str, Any], info: Any) -> None:
    expires = text(info, "expires")
    if expires:
        notice["expires_at"] = datetime.fromisoformat(expires).isoformat()  # schema-checked


def _jurisdiction(infos: list[Any]) -> str:
    codes: set[str] = set()
    descriptions: list[str] = []
    geometry = ""
    for info in infos:
        for area in info.findall(f"{{{NS}}}area"):
            descriptions.append(text(area, "areaDesc") or "")
            for code in pairs(area, "geocode"):
                if code["name"] == JURISDICTION_CODE and code["value"]:
                    codes.add(code["value"])
            for shape in ("polygon", "circle"):
                if area.find(f"{{{NS}}}{shape}") is not None:
                    geometry = geometry or shape
    if len(codes) == 1:
        return codes.pop()
    if not codes and geometry:
        raise CapError(
            f"alert/info/area/{geometry}: not resolved to a jurisdiction (the directory holds no "
            f"geometry); add a geocode with valueName {JURISDICTION_CODE!r}"
        )
    where = ", ".join(sorted({d for d in descriptions if d})) or "the alert's area"
    raise CapError(
        f"alert/info/area: {where!r} is not mapped to one Liaison jurisdiction "
        f"(add one geocode with valueName {JURISDICTION_CODE!r})"
    )
