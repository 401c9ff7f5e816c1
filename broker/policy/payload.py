"""Check a notice body against its channel's payload schema; every violation with its pointer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.policy.channel import Channel
from broker.policy.schema_check import compiled


@dataclass(frozen=True, slots=True)
class Violation:
    pointer: str  # RFC 6901 JSON pointer into the notice, e.g. "/body/adults"
    message: str


def _pointer(parts: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def payload_violations(channel: Channel, body: Any) -> list[Violation]:
    """All reasons ``body`` does not fit ``channel``; empty when it does."""
    violations: list[Violation] = []
    if isinstance(body, dict):
        for name in sorted(channel.forbidden_fields & body.keys()):
            violations.append(
                Violation(
                    _pointer(["body", name]),
                    f"field {name!r} is forbidden on this channel (data minimisation)",
                )
            )
        body = {k: v for k, v in body.items() if k not in channel.forbidden_fields}
    errors = compiled(channel.payload_schema).errors(body)
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        message = error.message
        if error.validator == "additionalProperties":
            message = message.replace(
                "Additional properties are not allowed", "undeclared field(s)"
            )
        violations.append(Violation(_pointer(["body", *error.absolute_path]), message))
    return violations
