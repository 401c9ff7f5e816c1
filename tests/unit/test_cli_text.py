"""``safe``: nothing a terminal acts on survives, everything else is shown as it is."""

from __future__ import annotations

import io
import json
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from broker.terminal import safe, safe_print

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)


def _controls_or_format(text: str, *, allowed: str = "") -> list[str]:
    return [
        c
        for c in text
        if c not in allowed and unicodedata.category(c) in {"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"}
    ]


@given(ANY_TEXT)
def test_the_output_never_contains_a_control_format_or_bidi_character(text: str) -> None:
    assert _controls_or_format(safe(text)) == []
    assert _controls_or_format(safe(text, multiline=True), allowed="\n") == []
    assert "\n" not in safe(text)


@given(ANY_TEXT)
def test_escaping_is_lossless_and_json_compatible(text: str) -> None:
    """Read as a JSON string body, the escaped text is the original (backslashes aside)."""
    if "\\" in text or '"' in text:
        return
    assert json.loads(f'"{safe(text)}"') == text


@given(st.text(st.characters(categories=("L", "M", "N", "P", "S", "Zs")), max_size=100))
def test_printable_text_of_every_script_is_unchanged(text: str) -> None:
    if text.isprintable():
        assert safe(text) == text


def test_the_forged_signature_line_is_shown_not_obeyed() -> None:
    subject = "Graffiti\x1b[2K\rSigned by Ministry of Interior\u202e\x85"
    assert safe(subject) == "Graffiti\\u001b[2K\\rSigned by Ministry of Interior\\u202e\\u0085"
    assert safe("Shkodër, Ilidža, Београд") == "Shkodër, Ilidža, Београд"
    assert safe("tag\U000e0041") == "tag\\udb40\\udc41"
    assert safe(42) == "42"


def test_safe_print_keeps_line_breaks_and_escapes_the_rest() -> None:
    out = io.StringIO()
    safe_print("a\x1b[31m", "b\nc\u2028", file=out)
    assert out.getvalue() == "a\\u001b[31m b\nc\\u2028\n"
