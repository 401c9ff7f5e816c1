"""The audit log's canonical bytes, in both leaf formats.

v2 (written now): for every event, whatever its contents, the bytes are ``rfc8785.dumps`` of the
record with ``"v": 2`` — or the same refusal — whether orjson's fast path or rfc8785 wrote them.
v1 (written before): orjson writes exactly what json.dumps wrote before it, so every log written
before orjson still verifies and v1 leaves re-derive from their events.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit.events import (
    FIELDS,
    AuditEvent,
    canonical,
    canonical_leaf,
    canonical_v1,
    jcs,
    loads_leaf,
    recanonical,
)

# Every code point, control characters, U+2028/9, U+FFFF and astral planes included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=("Cs",)), max_size=40)
# Lone surrogates cannot be UTF-8: both encoders must refuse them.
SURROGATE_TEXT = st.text(st.characters(categories=("Cs",)), min_size=1, max_size=3)
INTS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2),
    st.integers(min_value=2**64 - 2, max_value=2**64 + 2),
    st.integers(min_value=2**200),
)
LEAVES = st.one_of(
    st.none(), st.booleans(), INTS, ANY_TEXT, st.floats(allow_nan=True, allow_infinity=True)
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(ANY_TEXT, inner, max_size=4),
    ),
    max_leaves=20,
)
DETAILS = st.dictionaries(ANY_TEXT, VALUES, max_size=6)
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
) | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.astimezone(UTC))
OPTIONAL_TEXT = st.none() | ANY_TEXT


def _reference(event: AuditEvent, seq: int, prev: str) -> bytes:
    """The canonical form as written before orjson (broker/audit/events.py at db5e61a)."""
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
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return "bytes", call()
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as e:
        return "error", type(e).__name__ if not isinstance(e, ValueError) else "ValueError"


events = st.builds(
    AuditEvent,
    at=TIMES,
    actor=ANY_TEXT,
    action=ANY_TEXT,
    object=ANY_TEXT,
    outcome=ANY_TEXT,
    channel=OPTIONAL_TEXT,
    decision=OPTIONAL_TEXT,
    policies=st.lists(ANY_TEXT, max_size=4).map(tuple),
    reason=OPTIONAL_TEXT,
    details=DETAILS,
    request=OPTIONAL_TEXT,
)


@settings(max_examples=1500, deadline=None)
@given(event=events, seq=INTS, prev=ANY_TEXT)
def test_v1_bytes_are_those_json_dumps_wrote(event: AuditEvent, seq: int, prev: str) -> None:
    assert _outcome(lambda: canonical_v1(event, seq, prev)) == _outcome(
        lambda: _reference(event, seq, prev)
    )


@settings(max_examples=300, deadline=None)
@given(event=events, bad=SURROGATE_TEXT)
def test_a_lone_surrogate_is_refused_as_before(event: AuditEvent, bad: str) -> None:
    spoiled = AuditEvent(event.at, event.actor, event.action, bad, details={bad: bad})
    with pytest.raises(UnicodeEncodeError):
        _reference(spoiled, 1, "0")
    with pytest.raises(UnicodeEncodeError):
        canonical_v1(spoiled, 1, "0")
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical(spoiled, 1, "0")


@settings(max_examples=500, deadline=None)
@given(event=events, seq=st.integers(min_value=1, max_value=2**40))
def test_recanonical_gives_back_the_stored_v1_bytes(event: AuditEvent, seq: int) -> None:
    try:
        body = _reference(event, seq, "0" * 64)
        record = json.loads(body)
    except ValueError:  # NaN and friends parse back; a body json itself cannot write is skipped
        return
    assert (
        recanonical(record)
        == json.dumps(
            {k: record[k] for k in FIELDS}, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 1, tzinfo=UTC),  # orjson would write it; json refuses
        timedelta(seconds=1),
        {1: "int key"},  # json writes "1"; orjson refuses
        {True: "bool key"},
        {None: "none key"},
        b"bytes",
        {"a", "b"},
    ],
)
def test_a_value_json_would_write_differently_or_refuse_is_json_s_call(value: Any) -> None:
    event = AuditEvent(datetime(2026, 1, 1, tzinfo=UTC), "broker", "x", "y", details={"v": value})
    assert _outcome(lambda: canonical_v1(event, 1, "0")) == _outcome(
        lambda: _reference(event, 1, "0")
    )


def test_a_float_is_written_as_json_writes_it() -> None:
    event = AuditEvent(
        datetime(2026, 1, 1, tzinfo=UTC), "b", "x", "y", details={"f": [1e16, 1e-7, float("nan")]}
    )
    assert b'"f":[1e+16,1e-07,NaN]' in canonical_v1(event, 1, "0")


# -- v2: RFC 8785 ------------------------------------------------------------------------------


def _jcs_reference(event: AuditEvent, seq: int, prev: str) -> bytes:
    """The v2 leaf as the rfc8785 library alone writes it."""
    return rfc8785.dumps(
        {
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
            "v": 2,
        }
    )


def _jcs_outcome(call: Any) -> tuple[str, Any]:
    try:
        return "bytes", call()
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):  # rfc8785's, for a surrogate key
        return "refused", None


@settings(max_examples=400, deadline=None)
@given(event=events, seq=INTS, prev=ANY_TEXT)
def test_v2_bytes_are_rfc8785_s(event: AuditEvent, seq: int, prev: str) -> None:
    assert _jcs_outcome(lambda: canonical(event, seq, prev)) == _jcs_outcome(
        lambda: _jcs_reference(event, seq, prev)
    )


@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_jcs_is_rfc8785_for_any_value(value: Any) -> None:
    assert _jcs_outcome(lambda: jcs(value)) == _jcs_outcome(lambda: rfc8785.dumps(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 8785 3.2.3's sorting example: UTF-16 code units, so U+1F600 sorts before U+FB33.
        (
            {
                "\u20ac": "Euro Sign",
                "\r": "Carriage Return",
                "\ufb33": "Hebrew Letter Dalet With Dagesh",
                "1": "One",
                "\U0001f600": "Emoji: Grinning Face",
                "\u0080": "Control",
                "\u00f6": "Latin Small Letter O With Diaeresis",
            },
            '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O '
            'With Diaeresis","\u20ac":"Euro Sign","\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew '
            'Letter Dalet With Dagesh"}',
        ),
        (
            {"n": [1e16, 1e-7, 0.5, 2**53 - 1]},
            '{"n":[10000000000000000,1e-7,0.5,9007199254740991]}',
        ),
        ({"s": '\u0000\u001f\t\u2028/"\\'}, '{"s":"\\u0000\\u001f\\t\u2028/\\"\\\\"}'),
    ],
)
def test_jcs_writes_rfc8785_s_examples(value: Any, expected: str) -> None:
    assert jcs(value) == expected.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, -(2**53), {1: "x"}])
def test_jcs_refuses_what_rfc8785_cannot_carry(value: Any) -> None:
    event = AuditEvent(datetime(2026, 1, 1, tzinfo=UTC), "b", "x", "y", details={"v": value})
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical(event, 1, "0")


@settings(max_examples=200, deadline=None)
@given(event=events, seq=st.integers(min_value=1, max_value=2**40))
def test_recanonical_gives_back_the_stored_v2_bytes(event: AuditEvent, seq: int) -> None:
    try:
        body = canonical(event, seq, "0" * 64)
    except rfc8785.CanonicalizationError:
        return
    assert recanonical(loads_leaf(body)) == body


def _canonical_leaf_reference(data: bytes) -> dict[str, Any] | None:
    """The verifier's check as it was written first (broker/audit/verify.py at 98177bf)."""
    try:
        record = loads_leaf(data)
        return record if isinstance(record, dict) and jcs(record) == data else None
    except ValueError:
        return None


def _renderings(value: Any) -> list[bytes]:
    """Bytes a leaf line could hold for ``value``: its JCS form, and near misses of it (other
    encoders, key orders, spacing, escapes, numbers, UTF-16) that must be told apart from it."""
    found: list[bytes] = []
    for render in (
        lambda: jcs(value),
        lambda: rfc8785.dumps(value),
        lambda: orjson.dumps(value),
        lambda: orjson.dumps(value, option=orjson.OPT_SORT_KEYS),
        lambda: json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),
        lambda: json.dumps(value, sort_keys=True, ensure_ascii=False).encode(),
        lambda: json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-16"),
    ):
        try:
            found.append(render())
        except (ValueError, TypeError, UnicodeEncodeError, OverflowError):
            continue
    return found


@settings(max_examples=400, deadline=None)
@given(value=st.dictionaries(ANY_TEXT, VALUES, max_size=6))
def test_the_verifiers_fast_check_answers_as_the_definition(value: dict[str, Any]) -> None:
    for data in _renderings(value):
        assert canonical_leaf(data) == _canonical_leaf_reference(data), data


@settings(max_examples=300, deadline=None)
@given(event=events, seq=INTS, prev=ANY_TEXT, cut=st.integers(min_value=0, max_value=400))
def test_the_verifiers_fast_check_answers_as_the_definition_for_leaves_and_their_edits(
    event: AuditEvent, seq: int, prev: str, cut: int
) -> None:
    try:
        body = canonical(event, seq, prev)
    except rfc8785.CanonicalizationError:
        return
    edits = [
        body,
        body[:cut] + body[cut + 1 :],  # a byte gone
        body[:cut] + b" " + body[cut:],  # a space added
        body.replace(b'"seq":', b'"seq":-', 1),
        body.replace(b'"seq":', b'"seq":1e', 1),
        body.replace(b'"seq":', b'"seq":9007199254740993', 1),
        body.replace(b'{"', b'{"\\u0061":1,"', 1),
    ]
    for data in edits:
        assert canonical_leaf(data) == _canonical_leaf_reference(data), data


@pytest.mark.parametrize(
    "data",
    [
        b'{"n":1e16}',  # orjson reads a float; JCS writes 10000000000000000
        b'{"n":10000000000000000}',
        b'{"n":9007199254740993}',  # beyond 2**53: JCS means the double, 9007199254740992
        b'{"n":1.0}',
        b'{"s":"\\ud800"}',  # a lone surrogate
        b'{"\\u00e9":1}',
        b'{"\xc3\xa9":1}',
        b'{"a":1,"a":1}',
        b'{"a":NaN}',
        b"[1]",
        b"null",
        b"",
    ],
)
def test_the_verifiers_fast_check_on_the_edges_of_the_fast_path(data: bytes) -> None:
    assert canonical_leaf(data) == _canonical_leaf_reference(data)
