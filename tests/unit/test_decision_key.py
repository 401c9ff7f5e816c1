"""The decision cache's key (``attributes_key``, orjson) tells notice attributes apart exactly
as the ``json.dumps`` key it replaced did: equal for equal attributes and only then, lone
surrogates included (differential, hypothesis)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from broker.policy.decide import attributes_key

text = st.text(st.characters(), max_size=6)  # every code point, lone surrogates among them
entity = st.fixed_dictionaries({"__entity": st.fixed_dictionaries({"type": text, "id": text})})
value = st.one_of(text, st.booleans(), entity, st.lists(st.one_of(text, entity), max_size=3))
attrs = st.dictionaries(text, value, max_size=5)


def _old(a: dict[str, Any]) -> str:
    return json.dumps(a, sort_keys=True, separators=(",", ":"))


@given(attrs, attrs)
def test_the_key_tells_attributes_apart_as_the_json_key_did(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    assert (attributes_key(a) == attributes_key(b)) == (_old(a) == _old(b))


@given(attrs)
def test_equal_attributes_in_another_order_have_one_key(a: dict[str, Any]) -> None:
    assert attributes_key(dict(reversed(list(a.items())))) == attributes_key(a)


def test_a_lone_surrogate_is_keyed_not_refused() -> None:
    assert attributes_key({"severity": "\ud800"}) != attributes_key({"severity": "\ud801"})
