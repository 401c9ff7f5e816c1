"""A directory file written with libyaml's emitter (``broker/directory/present.py`` uses it where
PyYAML has it) is byte for byte what PyYAML's pure-Python emitter wrote before for printable text
in the Basic Multilingual Plane — every script of the region's eight languages, quotes,
YAML-looking strings, numbers, nesting — and reads back as the same document for any text: for
an emoji or a control or line-break character the two write different escapes of one value."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.directory import present
from broker.sourcefile import parse_yaml


class _PythonFlowDumper(yaml.SafeDumper):
    pass


_PythonFlowDumper.add_representer(
    dict,
    lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True),
)

_BMP = st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs", "Cc", "Zl", "Zp"))
_TEXT = st.text(_BMP, max_size=40) | st.sampled_from(
    ["yes", "no", "null", "~", "012", "1e3", "0x1F", "2026-12-04", "a: b", "- x", "#x", " lead",
     "trail ", "'", '"', "Ključ — ćao", "Приштина", "Shkupi", "", "\t", "x\ny"]
)  # fmt: skip
_SCALAR = _TEXT | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
_KEY = st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True)  # a directory's field names
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEY, inner, max_size=4),
    max_leaves=12,
)
_ENTRY = st.dictionaries(_KEY, _VALUE, min_size=1, max_size=6)


_C = pytest.mark.skipif(not hasattr(yaml, "CSafeDumper"), reason="PyYAML built without libyaml")


def _python_written(document: dict[str, Any]) -> str:
    original = present._FlowDumper
    try:
        present._FlowDumper = _PythonFlowDumper  # type: ignore[misc]
        return present.to_yaml(document, header="# a header\n")
    finally:
        present._FlowDumper = original  # type: ignore[misc]


@_C
@settings(max_examples=40, deadline=None)
@given(st.lists(_ENTRY, max_size=3), st.lists(_ENTRY, max_size=2))
def test_the_c_emitter_writes_what_the_python_emitter_wrote(
    contacts: list[dict[str, Any]], roles: list[dict[str, Any]]
) -> None:
    assert present._FlowDumper.__mro__[1] is yaml.CSafeDumper
    document = {"version": 7, "contacts": contacts, "roles": roles}
    assert present.to_yaml(document, header="# a header\n") == _python_written(document)


@_C
@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            _KEY, st.text(st.characters(exclude_categories=("Cs",)), max_size=20), min_size=1
        ),
        min_size=1,
        max_size=4,
    )
)
def test_any_text_reads_back_as_written(contacts: list[dict[str, str]]) -> None:
    document = {"version": 7, "contacts": contacts}
    written = present.to_yaml(document)
    assert parse_yaml(written, "directory.yaml").data == {
        **document,
        **{s: [] for s in ("jurisdictions", "organisations", "roles", "assignments")},
    }
