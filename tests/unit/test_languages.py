"""One rule maps a language tag to the eight interface languages (broker.languages.serving), and
every place a tag arrives uses it: a directory's language (broker.locale.match), a policy file
or Accept-Language (broker.titles.supported), a CAP info block (page_language) and the CLI."""

from __future__ import annotations

import pytest

from broker import languages, locale, titles
from broker.cap.languages import page_language
from broker.cli import i18n

CASES = [
    ("en", "en"),
    ("en-GB", "en"),
    ("sq", "sq"),
    ("sq-XK", "sq"),
    ("bs", "bs"),
    ("bs-Latn-BA", "bs"),
    ("hr", "hr"),
    ("HR-hr", "hr"),
    ("mk", "mk"),
    ("mk_MK", "mk"),
    ("sr", "sr-Latn"),
    ("sr-RS", "sr-Latn"),
    ("sr-ME", "sr-Latn"),
    ("sr-Latn", "sr-Latn"),
    ("sr_latn_rs", "sr-Latn"),
    ("sr-Cyrl", "sr-Cyrl"),
    ("SR-CYRL", "sr-Cyrl"),
    ("sr-Cyrl-BA", "sr-Cyrl"),
    ("sr-RS-Cyrl", "sr-Cyrl"),
    ("cnr", "cnr"),
    ("cnr-ME", "cnr"),
    ("cnr-Latn-ME", "cnr"),
    ("me", "cnr"),
    (" mk ", "mk"),
    # Never a neighbour's language, never English by default here: the caller decides.
    ("sh", None),
    ("bg", None),
    ("de", None),
    ("x-klingon", None),
    ("toString", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("tag", "code"), CASES)
def test_a_tag_is_served_by_one_of_the_eight_or_by_none(tag: str | None, code: str | None) -> None:
    assert languages.serving(tag) == code


@pytest.mark.parametrize(("tag", "code"), CASES)
def test_every_caller_applies_the_one_rule(tag: str | None, code: str | None) -> None:
    assert locale.match(tag) == (code or "en")  # a directory language without a catalog: English
    assert page_language(tag) == code
    if tag is not None:
        assert titles.supported(tag) == code


def test_the_cli_reads_serbian_locales_as_posix_names_them_and_the_rest_by_the_one_rule() -> None:
    assert i18n.from_locale("sr_RS.UTF-8") == "sr-Cyrl"  # POSIX: Cyrillic unless @latin
    assert i18n.from_locale("sr_RS@latin") == "sr-Latn"
    assert i18n.from_locale("sr-Latn") == "sr-Latn"
    assert i18n.from_locale("sr-Cyrl") == "sr-Cyrl"
    assert i18n.from_locale("C") == "en"
    for tag, code in CASES:
        if tag and not tag.strip().lower().startswith("sr"):
            assert i18n.from_locale(tag) == code, tag


def test_the_eight_are_one_list_everywhere() -> None:
    assert languages.CODES == ("en", "sq", "bs", "hr", "sr-Latn", "sr-Cyrl", "cnr", "mk")
    assert tuple(locale.LANGUAGES) == titles.CODES == i18n.CODES == languages.CODES
