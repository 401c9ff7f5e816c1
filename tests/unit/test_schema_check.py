"""The compiled schema check against plain ``jsonschema`` (the implementation it replaced on the
hot path): for every document, the same violations — so nothing is accepted that was refused
before, nothing refused that was accepted, and every refusal reads as it did."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.policy.load import PolicySet
from broker.policy.payload import payload_violations
from broker.policy.schema_check import CompiledSchema, compiled, format_checker
from broker.service.notices import NOTICE_SCHEMA, envelope_violations
from tests.conftest import POLICIES

EXAMPLES = [json.loads(p.read_text()) for p in sorted((POLICIES / "examples").glob("*.json"))]
FORMATS = format_checker()

# Text where the regex dialects and the length rules part ways: Unicode digits and letters, a
# final newline (Python's "$" matches before it), lone surrogates (JSON escapes can carry them).
AWKWARD = st.sampled_from(
    ["", "a", "al-mb", "A", "2026-01-31", "2026-01-31\n", "٢٠٢٦-٠١-٣١", "x\n", "\ud800", "é", "ß"]
)
TEXT = st.one_of(
    AWKWARD, st.text(max_size=12), st.from_regex(r"[a-z0-9._-]{1,10}\n?", fullmatch=True)
)
NUMBER = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 500, 501, -1]),
    st.sampled_from([2**64 + 1, -(2**64), -(2**70), 2**70 + 3, 10**30]),  # would wrap in Rust
    st.sampled_from([2**53, 2**53 + 1, float(2**53), 2.0**63, 2.0**64, 1e19]),  # past f64 precision
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 500.0, 500.5, 1e308, 5e-324]),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
DOCUMENT = st.one_of(SCALAR, JSON)  # the recursive strategy alone rarely draws a bare scalar


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with a few values replaced, members removed or added, at any depth."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(0, 3))):
        target = document
        while isinstance(target, dict | list) and target and draw(st.booleans()):
            keys = list(target) if isinstance(target, dict) else list(range(len(target)))
            child = target[draw(st.sampled_from(keys))]
            if not isinstance(child, dict | list):
                break
            target = child
        if isinstance(target, dict):
            action = draw(st.sampled_from(["replace", "remove", "add"]))
            if action == "add" or not target:
                target[draw(TEXT)] = draw(JSON)
            elif action == "remove":
                del target[draw(st.sampled_from(sorted(target)))]
            else:
                target[draw(st.sampled_from(sorted(target)))] = draw(JSON)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(JSON)
    return document


def _same(check: CompiledSchema, reference: jsonschema.Draft202012Validator, doc: Any) -> None:
    def seen(errors: Any) -> list[tuple[list[Any], str, str]]:
        return sorted(
            ((list(map(str, e.absolute_path)), e.validator, e.message) for e in errors), key=str
        )

    def outcome(errors: Any) -> Any:
        # jsonschema's multipleOf cannot divide an infinity (OverflowError); a keyword left to it
        # fails the same way here. The broker never hands the check one: its JSON reader
        # refuses NaN and Infinity (broker/http/json_body.py).
        try:
            return seen(errors())
        except OverflowError:
            return OverflowError

    assert outcome(lambda: check.errors(doc)) == outcome(lambda: reference.iter_errors(doc))


ENVELOPE_REF = jsonschema.Draft202012Validator(NOTICE_SCHEMA, format_checker=FORMATS)
ENVELOPE = CompiledSchema(NOTICE_SCHEMA, FORMATS)


def test_the_shipped_schemas_are_compiled() -> None:
    """Otherwise the differential tests below would compare jsonschema with itself."""
    assert ENVELOPE.compiled


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXAMPLES).flatmap(mutated))
def test_envelope_agrees_on_mutated_examples(doc: Any) -> None:
    _same(ENVELOPE, ENVELOPE_REF, doc)


@settings(max_examples=200)
@given(JSON)
def test_envelope_agrees_on_arbitrary_json(doc: Any) -> None:
    _same(ENVELOPE, ENVELOPE_REF, doc)


@pytest.mark.parametrize(
    "change",
    [
        {"channel": "x\n"},  # Python's "$" accepts a final newline: still accepted
        {"to": ["a", "a"]},
        {"to": [1, True]},
        {"severity": 1},
        {"expires_at": "not a time"},  # format is not checked by the schema (no rfc3339 lib)
        {"subject": "\ud800"},
        {"cancel": 1},
        {"extra": 2**64},
    ],
)
def test_envelope_edge_cases_agree(change: dict[str, Any]) -> None:
    doc = {**EXAMPLES[0], **change}
    _same(ENVELOPE, ENVELOPE_REF, doc)
    assert envelope_violations(doc) == envelope_violations(json.loads(json.dumps(doc)))


def _payload_cases(policies: PolicySet) -> list[tuple[str, Any]]:
    return [
        (doc["channel"], doc["body"]) for doc in EXAMPLES if doc["channel"] in policies.channels
    ]


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_payload_agrees_on_mutated_examples(policies: PolicySet, data: st.DataObject) -> None:
    channel_id, body = data.draw(st.sampled_from(_payload_cases(policies)))
    channel = policies.channels[channel_id]
    check = compiled(channel.payload_schema)
    assert check.compiled
    reference = jsonschema.Draft202012Validator(channel.payload_schema)
    doc = data.draw(mutated(body))
    _same(check, reference, doc)


# Schemas beyond the shipped ones: the keywords where two implementations could disagree.
SCHEMAS = [
    {"type": "integer", "minimum": 0, "maximum": 500},
    {"type": "number", "exclusiveMaximum": 2**63},
    {"type": "number", "minimum": -(2**63), "maximum": 2**64},
    {"maximum": 9007199254740993},
    {"maximum": 9007199254740992.0, "minimum": -9007199254740992.0},
    {"exclusiveMinimum": 2**63 - 1, "exclusiveMaximum": 2.0**64},
    {"enum": [9007199254740993, 2**64 - 1]},
    {"multipleOf": 3},  # left to jsonschema: 1.6385660279823318e+224 % 3 differs in Rust
    {"multipleOf": 0.1},  # left to jsonschema: float division differs
    {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,63}$"},
    {"pattern": r"^\w+$"},
    {"pattern": r"^\s*$"},  # left to jsonschema: \s differs both ways
    {"pattern": r"(?i)^a$"},  # flags: left to jsonschema
    {"pattern": r"a{2,}|b.c"},
    {"patternProperties": {r"^x\d$": {"type": "integer"}}, "additionalProperties": False},
    {"propertyNames": {"pattern": r"^[a-z]+$"}, "maxProperties": 3},
    {"type": "array", "uniqueItems": True},
    {"enum": [1, "1", True, None, [1], {"a": 1}]},
    {"const": 0},
    {"type": "string", "format": "email"},  # checked by jsonschema's format checker
    {"type": "string", "format": "date-time", "maxLength": 40},
    {"type": "string", "minLength": 2, "maxLength": 3},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
    {"type": "object", "required": ["a"], "dependentRequired": {"a": ["b"]}},
    {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 5}]},
    {"oneOf": [{"type": "number"}, {"type": "integer"}]},
    {"not": {"type": "null"}},
    {"if": {"type": "integer"}, "then": {"minimum": 1}, "else": {"type": "string"}},
]


@settings(max_examples=600)
@given(st.sampled_from(SCHEMAS), st.booleans(), DOCUMENT)
def test_other_keywords_agree(schema: dict[str, Any], formats: bool, doc: Any) -> None:
    checker = FORMATS if formats else None
    _same(
        CompiledSchema(schema, checker),
        jsonschema.Draft202012Validator(schema, format_checker=checker),
        doc,
    )


def test_risky_keywords_are_left_to_jsonschema() -> None:
    assert not CompiledSchema({"multipleOf": 0.1}).compiled
    assert not CompiledSchema({"multipleOf": 3}).compiled
    assert not CompiledSchema({"pattern": r"^\s*$"}).compiled
    assert not CompiledSchema({"pattern": r"(?i)a"}).compiled
    assert not CompiledSchema({"format": "email"}, FORMATS).compiled
    assert CompiledSchema({"format": "email"}).compiled  # an annotation only, as before
    assert not CompiledSchema({"$ref": "https://example.invalid/schema"}).compiled  # never fetched


def test_payload_messages_are_unchanged(policies: PolicySet) -> None:
    channel = policies.channels["returnee-repatriation"]
    body = {"adults": 2**64, "children": "3", "secret": 1}
    assert [(v.pointer, v.message) for v in payload_violations(channel, body)] == [
        (v.pointer, v.message) for v in _reference_payload(channel.payload_schema, body)
    ]


def _reference_payload(schema: dict[str, Any], body: Any) -> list[Any]:
    from broker.policy.payload import Violation, _pointer

    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for e in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))):
        message = e.message
        if e.validator == "additionalProperties":
            message = message.replace(
                "Additional properties are not allowed", "undeclared field(s)"
            )
        out.append(Violation(_pointer(["body", *e.absolute_path]), message))
    return out


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 4 and Path(POLICIES / "examples").is_dir()
