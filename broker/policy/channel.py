"""Channel files: what may be posted on a channel, how it is handled, and who receives it.

Invariants enforced at load time (each refusal names file and line):
- a payload never accepts a field the channel does not declare (data minimisation), and a field
  listed as forbidden can be neither declared nor sent;
- TLP:AMBER+STRICT and TLP:RED channels never send content outside the inbox (webhooks carry
  metadata at most; e-mail is always a content-free alert on every channel);
- TLP:RED channels do not escalate: RED is for the named recipients only;
- every recipient rule names role kinds and a scope; a channel without rules reaches no one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jsonschema

from broker.errors import SourceProblem
from broker.sourcefile import Source, schema_problems
from broker.titles import Text, Translations, read, text_schema

RULE_ID = {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,63}$"}
KIND = {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,63}$"}
KINDS = {"type": "array", "items": KIND, "minItems": 1, "maxItems": 32, "uniqueItems": True}
LEVELS = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {
        "enum": ["country", "entity", "region", "canton", "district", "county", "municipality"]
    },
}
SEVERITIES = ("info", "low", "medium", "high", "critical")


class Marking(StrEnum):
    """TLP 2.0 handling markings."""

    CLEAR = "CLEAR"
    GREEN = "GREEN"
    AMBER = "AMBER"
    AMBER_STRICT = "AMBER+STRICT"
    RED = "RED"

    @property
    def restricted(self) -> bool:
        return self in (Marking.AMBER_STRICT, Marking.RED)


class Scope(StrEnum):
    SAME = "same"  # roles in the notice's own jurisdiction
    WITHIN = "within"  # the notice's jurisdiction and every jurisdiction below it
    ABOVE = "above"  # every jurisdiction above the notice's (its parents)
    ADDRESSED = "addressed"  # roles of the organisations the notice is addressed to (`to`)
    REQUESTER = "requester"  # the role that asked, for an answer (`reply_to_role`)


CHANNEL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "title", "marking", "retention_days", "publishers", "recipients", "payload"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[a-z][a-z0-9-]{0,63}$"},
        "title": text_schema(200),
        "description": {"type": "string", "maxLength": 4000},
        "marking": {"enum": [m.value for m in Marking]},
        "retention_days": {"type": "integer", "minimum": 1, "maximum": 3650},
        "ack_deadline_hours": {"type": "integer", "minimum": 1, "maximum": 720},
        "escalation": {"type": "array", "items": KIND, "maxItems": 8, "uniqueItems": True},
        "severities": {
            "type": "array",
            "items": {"enum": list(SEVERITIES)},
            "minItems": 1,
            "uniqueItems": True,
        },
        "jurisdiction_levels": LEVELS,
        "replies": {"type": "boolean"},
        # Two-person release: a notice waits, wrapped for the escrow only, until a second
        # officer of the sending agency approves it (broker.service.release).
        "release": {
            "type": "object",
            "additionalProperties": False,
            "required": ["approvals"],
            "properties": {
                "approvals": {"const": 2},
                "timeout_hours": {"type": "integer", "minimum": 1, "maximum": 168},
            },
        },
        "delivery": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "push": {"type": "boolean"},
                "webhook": {"enum": ["off", "metadata", "ciphertext"]},
                "email": {"enum": ["off", "alert"]},
            },
        },
        "publishers": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "organisation_kinds": KINDS,
                "organisations": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
        },
        "recipients": {
            "type": "array",
            "maxItems": 32,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["rule", "scope"],
                "properties": {
                    "rule": RULE_ID,
                    "description": {"type": "string", "maxLength": 500},
                    "roles": KINDS,
                    "scope": {"enum": [s.value for s in Scope]},
                    "levels": LEVELS,
                },
            },
        },
        "payload": {
            "type": "object",
            "additionalProperties": False,
            "required": ["fields"],
            "properties": {
                "fields": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 64,
                    "propertyNames": {"pattern": r"^[a-z][a-z0-9_]{0,63}$"},
                },
                "required": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "forbidden": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                # What a page shows for a field's name and for an enum value, by language:
                # names declared anywhere in the fields (nested properties too), values of
                # their enums. Presentation only: never part of the JSON Schema a body meets.
                "labels": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "fields": {"type": "object", "additionalProperties": text_schema(200)},
                        "values": {"type": "object", "additionalProperties": text_schema(200)},
                    },
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(CHANNEL_SCHEMA)


@dataclass(frozen=True, slots=True)
class RecipientRule:
    rule: str
    scope: Scope
    roles: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Delivery:
    push: bool = True
    webhook: str = "off"
    email: str = "off"


@dataclass(frozen=True, slots=True)
class Labels:
    """A channel's names for its body's fields and enum values, each a ``Text``."""

    fields: dict[str, Text] = field(default_factory=dict)
    values: dict[str, Text] = field(default_factory=dict)

    def pick(self, language: str | None) -> dict[str, dict[str, str]]:
        return {
            "fields": {k: t.pick(language) for k, t in self.fields.items()},
            "values": {k: t.pick(language) for k, t in self.values.items()},
        }


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    title: str  # the default text (English, else the file's first language)
    marking: Marking
    retention_days: int
    recipients: tuple[RecipientRule, ...]
    payload_schema: dict[str, Any]
    forbidden_fields: frozenset[str]
    publisher_kinds: tuple[str, ...] = ()
    publisher_organisations: tuple[str, ...] = ()
    description: str = ""
    ack_deadline_hours: int | None = None
    escalation: tuple[str, ...] = ()
    severities: tuple[str, ...] = SEVERITIES
    jurisdiction_levels: tuple[str, ...] = ()
    replies: bool = False
    delivery: Delivery = field(default_factory=Delivery)
    release_hours: int | None = None  # two-person release: hours to wait; None: not required
    line: int = 1  # where the channel's file starts, for messages
    titles: Translations = ()  # the title by language (broker.titles)
    labels: Labels = field(default_factory=Labels)


def parse_channel(source: Source, expected_id: str) -> tuple[Channel | None, list[SourceProblem]]:
    """Build a channel from its file, or return the problems that refuse it."""
    problems = schema_problems(source, _VALIDATOR)
    if problems:
        return None, problems
    data: dict[str, Any] = source.data
    if data["id"] != expected_id:
        problems.append(
            source.problem(
                ("id",), f"channel id {data['id']!r} must match its file name {expected_id!r}"
            )
        )
    problems += _check_payload(source)
    problems += _check_handling(source)
    problems += _check_rules(source)
    title, found = read(data["title"], ("title",), source.problem)
    labels, found_labels = _labels(source)
    problems += found + found_labels
    if problems:
        return None, problems
    payload = data["payload"]
    delivery = data.get("delivery", {})
    channel = Channel(
        id=data["id"],
        title=title.default,
        titles=title.translations,
        labels=labels,
        marking=Marking(data["marking"]),
        retention_days=data["retention_days"],
        recipients=tuple(
            RecipientRule(
                r["rule"],
                Scope(r["scope"]),
                tuple(r.get("roles", ())),
                tuple(r.get("levels", ())),
                r.get("description", ""),
            )
            for r in data["recipients"]
        ),
        payload_schema=payload_json_schema(payload),
        forbidden_fields=frozenset(payload.get("forbidden", ())),
        publisher_kinds=tuple(data["publishers"].get("organisation_kinds", ())),
        publisher_organisations=tuple(data["publishers"].get("organisations", ())),
        description=data.get("description", ""),
        ack_deadline_hours=data.get("ack_deadline_hours"),
        escalation=tuple(data.get("escalation", ())),
        severities=tuple(data.get("severities", SEVERITIES)),
        jurisdiction_levels=tuple(data.get("jurisdiction_levels", ())),
        replies=data.get("replies", False),
        release_hours=_release_hours(data),
        delivery=Delivery(
            delivery.get("push", True), delivery.get("webhook", "off"), delivery.get("email", "off")
        ),
    )
    return channel, []


def _labels(source: Source) -> tuple[Labels, list[SourceProblem]]:
    """The payload's labels, each naming a declared field or enum value (a typo is refused)."""
    payload = source.data["payload"]
    given = payload.get("labels", {})
    names, values = _declared(payload["fields"])
    problems: list[SourceProblem] = []
    out: dict[str, dict[str, Text]] = {"fields": {}, "values": {}}
    for section, known, what in (("fields", names, "field"), ("values", values, "enum value")):
        for key, value in given.get(section, {}).items():
            where = ("payload", "labels", section, key)
            if key not in known:
                problems.append(source.problem(where, f"label for {what} {key!r}, not declared"))
            text, found = read(value, where, source.problem)
            problems += found
            out[section][key] = text
    return Labels(out["fields"], out["values"]), problems


def _declared(fields: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Every property name and every string enum or const value in the payload's schemas."""
    names: set[str] = set(fields)
    values: set[str] = set()
    stack: list[Any] = list(fields.values())
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack += node
        if not isinstance(node, dict):
            continue
        properties = node.get("properties")
        if isinstance(properties, dict):
            names.update(properties)
        values.update(v for v in node.get("enum", ()) if isinstance(v, str))
        if isinstance(node.get("const"), str):
            values.add(node["const"])
        stack += [v for v in node.values() if isinstance(v, dict | list)]
    return names, values


def _release_hours(data: dict[str, Any]) -> int | None:
    release = data.get("release")
    return None if release is None else int(release.get("timeout_hours", 4))


def payload_json_schema(payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema a notice body must match: declared fields only, nothing else."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": payload["fields"],
        "required": list(payload.get("required", ())),
    }


def _check_payload(source: Source) -> list[SourceProblem]:
    payload = source.data["payload"]
    fields, problems = payload["fields"], []
    for name, schema in fields.items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            problems.append(
                source.problem(("payload", "fields", name), f"field {name!r}: {e.message}")
            )
        if name in payload.get("forbidden", ()):
            problems.append(
                source.problem(
                    ("payload", "fields", name), f"field {name!r} is both declared and forbidden"
                )
            )
    for i, name in enumerate(payload.get("required", ())):
        if name not in fields:
            problems.append(
                source.problem(
                    ("payload", "required", i), f"required field {name!r} is not declared"
                )
            )
    return problems


def _check_handling(source: Source) -> list[SourceProblem]:
    data, problems = source.data, []
    marking = Marking(data["marking"])
    if marking.restricted and data.get("delivery", {}).get("webhook") == "ciphertext":
        problems.append(
            source.problem(
                ("delivery", "webhook"),
                f"TLP:{marking} allows webhooks to carry metadata only, not ciphertext",
            )
        )
    if marking is Marking.RED and data.get("escalation"):
        problems.append(
            source.problem(
                ("escalation",), "TLP:RED is for the named recipients only: no escalation"
            )
        )
    if data.get("escalation") and "ack_deadline_hours" not in data:
        problems.append(
            source.problem(("escalation",), "an escalation chain needs ack_deadline_hours")
        )
    return problems


def _check_rules(source: Source) -> list[SourceProblem]:
    problems, seen = [], set()
    for i, rule in enumerate(source.data["recipients"]):
        if rule["rule"] in seen:
            problems.append(
                source.problem(("recipients", i, "rule"), f"duplicate rule {rule['rule']!r}")
            )
        seen.add(rule["rule"])
        if rule["scope"] != Scope.REQUESTER and "roles" not in rule:
            problems.append(
                source.problem(
                    ("recipients", i), f"rule {rule['rule']!r} must name the roles it selects"
                )
            )
    return problems
