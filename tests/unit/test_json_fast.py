"""orjson on the request path against the ``json`` module it replaced: a body is read to the same
document (or refused) exactly as ``json.loads`` does, and an answer reads back as the document
``json.dumps`` wrote."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.http.json_body import dumps
from broker.input import parse_json

NUMBER = st.one_of(
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
)
TEXT = st.one_of(
    st.text(max_size=10), st.sampled_from(["\ud800", "\udfff x", "\x00", "é", "\U0001f600"])
)
VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBER, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=15,
)
# What json.loads reads and orjson may not, or reads differently.
SNIPPETS = st.sampled_from(
    [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"1e400",
        b"-1e400",
        b"1.7976931348623159e308",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"123456789012345678901234567890",
        b"0.1000000000000000055511151231257827",
        b"1E-400",
        b"-0",
        b"-0.0",
        b'"\\ud800"',
        b'"\\udc00\\ud800"',
        b'"\\ud83d\\ude00"',
        b'"\xed\xa0\x80"',
        b'"\xff"',
        b"\xef\xbb\xbf",
        b'{"a":1,"a":2}',
        b'{"a":1,"b":2,"a":3}',
        b"\x00",
        b"\t",
        b"\x0c",
        b" ",
        b"01",
        b"1.",
        b".5",
        b'"\x01"',
        b'"\x7f"',
        b"[",
        b"]",
        b"{",
        b"}",
        b",",
        b":",
        b'"',
        b"\\",
    ]
)


def _typed(value: Any) -> Any:
    """``value`` with types and order spelled out (1 is not 1.0 nor True; NaN equals NaN)."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    if isinstance(value, float):
        return ("float", value.hex())  # -0.0 and 0.0 differ
    return (type(value).__name__, value)


def _reads_alike(body: bytes) -> None:
    try:
        expected = ("read", _typed(json.loads(body)))
    except ValueError as e:
        expected = ("refused", type(e).__name__)
    try:
        seen = ("read", _typed(parse_json(body)))
    except ValueError as e:
        seen = ("refused", type(e).__name__)
    assert seen == expected


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    value = draw(VALUE)
    style = draw(st.sampled_from(["ascii", "utf-8", "compact", "utf-16"]))
    if style == "utf-16":
        return json.dumps(value).encode("utf-16")  # json.loads detects it; orjson refuses
    text = json.dumps(
        value,
        ensure_ascii=style == "ascii",
        separators=(",", ":") if style == "compact" else None,
    )
    body = text.encode("utf-8", "surrogatepass")
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(body)))
        cut = draw(st.integers(0, 2))
        body = body[:at] + draw(SNIPPETS | st.binary(max_size=2)) + body[at + cut :]
    return body


@settings(max_examples=1000)
@given(bodies())
def test_bodies_read_as_json_loads_reads_them(body: bytes) -> None:
    _reads_alike(body)


@settings(max_examples=300)
@given(st.lists(SNIPPETS, min_size=1, max_size=4))
def test_awkward_snippets_read_alike(parts: list[bytes]) -> None:
    _reads_alike(b"[" + b",".join(parts) + b"]")
    _reads_alike(b'{"k":' + b"".join(parts) + b"}")


@settings(max_examples=500)
@given(st.one_of(VALUE, st.floats(), st.dictionaries(st.integers(), VALUE, max_size=3)))
def test_answers_read_back_as_json_dumps_wrote_them(value: Any) -> None:
    assert _typed(json.loads(dumps(value))) == _typed(json.loads(json.dumps(value)))


def test_a_lone_surrogate_in_a_pointer_is_still_answered() -> None:
    problem = {"violations": [{"pointer": "/body/\ud800", "message": "x"}]}
    assert json.loads(dumps(problem)) == problem
