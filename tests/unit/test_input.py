"""The input bounds of broker/input.py against independent references (the json module)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import ControlCharacter, KeyInvalid, NestingTooDeep, NumberOutOfRange
from broker.input import (
    MAX_INT64,
    check_identifier,
    check_integer,
    check_json_depth,
    check_key,
    check_no_nul,
    rfc3339_time,
)

TRICKY_TEXT = st.text(alphabet=st.sampled_from('[]{}"\\ax\x00\n'), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
    max_leaves=40,
)


def depth(value: Any) -> int:
    """Nesting depth as the json module sees it: a scalar is 0, [] is 1, [[]] is 2."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@given(value=JSON, limit=st.integers(min_value=0, max_value=8))
def test_the_bracket_scan_agrees_with_the_parsed_depth(value: Any, limit: int) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    if depth(value) > limit:
        with pytest.raises(NestingTooDeep):
            check_json_depth(body, limit)
    else:
        check_json_depth(body, limit)


@given(body=st.binary(max_size=200))
def test_the_bracket_scan_takes_any_bytes(body: bytes) -> None:
    with contextlib.suppress(NestingTooDeep):  # refused or passed on, never anything else
        check_json_depth(body, 4)


def test_integers_must_fit_a_signed_64_bit_column() -> None:
    assert check_integer(MAX_INT64, "/cursor") == MAX_INT64
    for number in (-1, MAX_INT64 + 1, 10**30):
        with pytest.raises(NumberOutOfRange) as caught:
            check_integer(number, "/cursor")
        assert caught.value.extensions() == {"pointer": "/cursor"}


def test_control_characters_nul_and_keys() -> None:
    check_identifier("ntc_01a2-ok:x", "path")
    for bad in ("a\x00", "a\x1f", "a\x7f", "a\n"):
        with pytest.raises(ControlCharacter):
            check_identifier(bad, "path")
    with pytest.raises(ControlCharacter) as caught:
        check_no_nul({"body": {"list": ["ok", "n\x00"]}})
    assert caught.value.pointer == "/body/list/1"
    check_no_nul({"text": "line\nbreaks and tabs\t are text"})
    assert check_key("k" * 128) == "k" * 128
    for bad in ("", "k" * 129, "tab\t", "é"):
        with pytest.raises(KeyInvalid):
            check_key(bad)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2027-01-01T00:00:00Z", True),
        ("2027-01-01t00:00:00.5+01:00", True),
        ("2027-01-01T00:00:00", False),  # no offset
        ("2027-01-01", False),
        ("20270101T000000Z", False),  # ISO 8601 basic format, not RFC 3339
        ("2027-02-30T00:00:00Z", False),
        ("2027-01-01T24:00:00Z", False),
        ("tomorrow", False),
    ],
)
def test_rfc3339_date_times(text: str, valid: bool) -> None:
    assert (rfc3339_time(text) is not None) is valid


def test_every_input_refusal_has_a_4xx_status_in_the_one_table() -> None:
    from broker.errors import InputRefused
    from broker.http.problems import status_of

    def family(cls: type[InputRefused]) -> list[type[InputRefused]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in family(sub))]

    statuses = {cls.code: status_of(cls) for cls in family(InputRefused)}
    assert len(statuses) == 6
    assert all(s is not None and 400 <= s < 500 for s in statuses.values()), statuses
    assert statuses["header_too_large"] == 431
