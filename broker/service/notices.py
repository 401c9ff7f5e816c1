"""The notice envelope: top-level fields of a posted notice, checked before routing."""

from __future__ import annotations

from typing import Any

from broker.domain.notice import EXERCISES, SEVERITIES, NoticeFacts
from broker.errors import NoticeInvalid
from broker.policy.payload import Violation
from broker.policy.schema_check import CompiledSchema, format_checker

ID = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._-]{0,127}$"}

NOTICE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["channel", "jurisdiction", "severity", "subject", "body"],
    "properties": {
        "channel": ID,
        "jurisdiction": ID,
        "severity": {"enum": list(SEVERITIES)},
        "subject": {"type": "string", "minLength": 1, "maxLength": 200},
        "body": {"type": "object"},
        "expires_at": {"type": "string", "format": "date-time", "maxLength": 40},
        "supersedes": {"type": "string", "maxLength": 64},
        "cancel": {"type": "boolean"},
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 128},
        "to": {"type": "array", "items": ID, "minItems": 1, "maxItems": 16, "uniqueItems": True},
        "requesting_role": ID,
        "in_reply_to": {"type": "string", "maxLength": 64},
        # Signed like every field: the broker keeps a copy, recipients compare it on reading.
        "exercise": {"enum": list(EXERCISES)},
    },
}
_VALIDATOR = CompiledSchema(NOTICE_SCHEMA, format_checker())


QUERY_INVALID = "the query is not valid"  # the message when a query, not a notice, is refused


def envelope_violations(document: Any) -> list[Violation]:
    return [
        Violation("".join(f"/{p}" for p in e.absolute_path), e.message)
        for e in sorted(_VALIDATOR.errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def notice_facts_from_document(
    document: Any, *, sender: str, notice_id: str = "draft", reply_to_role: str | None = None
) -> NoticeFacts:
    """Routing metadata of a notice document; ``NoticeInvalid`` when its envelope is malformed."""
    violations = envelope_violations(document)
    if violations:
        raise NoticeInvalid(violations)
    return NoticeFacts(
        channel=document["channel"],
        jurisdiction=document["jurisdiction"],
        severity=document["severity"],
        sender=sender,
        id=notice_id,
        addressees=tuple(document.get("to", ())),
        reply_to_role=reply_to_role,
        exercise=document.get("exercise"),
    )
