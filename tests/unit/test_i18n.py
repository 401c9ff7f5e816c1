"""Every message in every one of the eight languages, for the web inbox and the e-mail alerts.

The page's catalogs (``broker/web/static/locales/<tag>.json``) and the gettext catalogs
(``broker/locale/<tag>/LC_MESSAGES/liaison.po``) must each hold every message of the English
source, non-empty, with the same placeholders; Serbian Cyrillic must be Cyrillic, the Latin
catalogs Latin; Serbian is ekavian, Bosnian, Croatian and Montenegrin ijekavian; and a directory
``language`` tag finds its catalog by BCP 47 rules.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from adapters.delivery.email import BODY, EXERCISE_LINES, EXERCISE_TAGS, SUBJECT, alert
from broker.locale import HERE, LANGUAGES, catalog_path, match, translations
from tests.unit.test_cli_i18n import cli_msgids

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "broker" / "web" / "static" / "locales"
EIGHT = ["en", "sq", "bs", "hr", "sr-Latn", "sr-Cyrl", "cnr", "mk"]
# What may stay in Latin letters in a Cyrillic message: names, formats and placeholders.
NOT_WORDS = re.compile(
    r"\{\w+\}|Liaison|liaison|ISO|TLP|Ed25519|X25519|\.pem|root\.json|\w+\.(?:json|xml)|--[\w-]+|[A-Z]{2,}"
    # what --help names as it is typed: $VARIABLES, %(default)s (and argparse's %s, %r), paths
    # and dotted settings, media types, a CAP msgType pair and a key chord
    r"|\$\w+|%\(\w+\)[sr]|%[sr]|sha256|[\w$.+-]*[./_][\w$.+/-]+|Ctrl-C"
)
LATIN = re.compile(r"[A-Za-zčćđšžČĆĐŠŽ]")
CYRILLIC = re.compile(r"[\u0400-\u04FF]")

# Every message an e-mail alert may carry (an exercise's tag and line beside the two).
ALERT = {SUBJECT, BODY, *EXERCISE_TAGS.values(), *EXERCISE_LINES.values()}


def page_catalog(code: str) -> dict[str, str]:
    return dict(json.loads((PAGE / f"{code}.json").read_text()))


def po_catalog(code: str) -> dict[str, str]:
    with catalog_path(code).open("rb") as source:
        catalog = read_po(source)
    assert not [m.id for m in catalog if m.id and m.fuzzy], f"{code}: fuzzy entries are not used"
    return {str(m.id): str(m.string) for m in catalog if m.id}


def braces(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def words(text: str) -> str:
    return NOT_WORDS.sub("", text)


def test_the_eight_languages_are_the_same_everywhere() -> None:
    assert list(LANGUAGES) == EIGHT
    assert sorted(p.stem for p in PAGE.glob("*.json")) == sorted(EIGHT)
    assert sorted(p.parent.parent.name for p in HERE.glob("*/LC_MESSAGES/liaison.po")) == sorted(
        EIGHT
    )
    script = (ROOT / "broker" / "web" / "static" / "i18n.js").read_text()
    listed = re.search(r"export const LANGUAGES = \{(.*?)\};", script, re.S)
    assert listed is not None
    assert re.findall(r'"?([\w-]+)"?: "', listed.group(1)) == EIGHT


@pytest.mark.parametrize("code", EIGHT)
def test_every_page_message_exists_in_every_language(code: str) -> None:
    english, catalog = page_catalog("en"), page_catalog(code)
    assert sorted(catalog) == sorted(english), f"{code}: missing or extra keys"
    for key, text in catalog.items():
        assert text.strip(), f"{code}.{key} is empty"
        assert braces(text) == braces(english[key]), f"{code}.{key}: placeholders differ"
    assert catalog["previous_key"] != english["previous_key"] or code == "en"


@pytest.mark.parametrize("code", EIGHT)
def test_every_alert_message_exists_in_every_language(code: str) -> None:
    template = po_catalog("en")
    catalog = po_catalog(code)
    assert sorted(catalog) == sorted(template) == sorted(ALERT | cli_msgids())
    for msgid, text in catalog.items():
        assert text.strip(), f"{code}: {msgid!r} is untranslated"
        assert braces(text) == braces(msgid), f"{code}: placeholders differ in {msgid!r}"
        if code != "en":
            assert text != msgid, f"{code}: {msgid!r} left in English"


def test_the_template_lists_every_message_the_code_marks() -> None:
    with (HERE / "liaison.pot").open("rb") as source:
        assert {m.id for m in read_po(source) if m.id} == ALERT | cli_msgids()


@pytest.mark.parametrize("code", ["sr-Cyrl", "mk"])
def test_cyrillic_catalogs_are_written_in_cyrillic(code: str) -> None:
    texts = [*page_catalog(code).values(), *po_catalog(code).values()]
    for text in texts[1:]:  # [0]: "title", the product's name
        assert not LATIN.search(words(text)), f"{code}: Latin letters in {text!r}"


@pytest.mark.parametrize("code", ["sq", "bs", "hr", "sr-Latn", "cnr"])
def test_latin_catalogs_are_written_in_latin(code: str) -> None:
    for text in [*page_catalog(code).values(), *po_catalog(code).values()]:
        assert not CYRILLIC.search(text), f"{code}: Cyrillic letters in {text!r}"


# (language, words that must appear somewhere, word stems that must not start any word)
VOCABULARY = [
    (
        "sr-Latn",
        ["obaveštenje", "vreme", "provera"],
        ["obavješt", "vrijem", "provjer", r"obavijest\b"],
    ),
    ("sr-Cyrl", ["обавештење", "време", "провера"], ["обавјешт", "вријем", "провјер"]),
    (
        "bs",
        ["obavještenje", "vrijeme", "provjera"],
        ["obavešt", r"vreme\b", "prover", r"obavijest\b"],
    ),
    (
        "cnr",
        ["obavještenje", "vrijeme", "provjera"],
        ["obavešt", r"vreme\b", "prover", r"obavijest\b"],
    ),
    ("hr", ["obavijest", "vrijeme", "provjera", "primitak"], ["obavješten", "obavešt", r"vreme\b"]),
]


@pytest.mark.parametrize(("code", "present", "absent"), VOCABULARY)
def test_each_language_keeps_its_own_vocabulary(
    code: str, present: list[str], absent: list[str]
) -> None:
    text = " ".join([*page_catalog(code).values(), *po_catalog(code).values()]).lower()
    for word in present:
        assert word in text, f"{code} should say {word!r}"
    for word in absent:
        assert not re.search(rf"\b{word}", text), f"{code} should not say {word!r}"


@pytest.mark.parametrize(
    ("tag", "code"),
    [
        ("en", "en"),
        ("en-GB", "en"),
        ("sq", "sq"),
        ("sq-XK", "sq"),
        ("bs", "bs"),
        ("bs-Latn-BA", "bs"),
        ("hr", "hr"),
        ("hr-HR", "hr"),
        ("sr", "sr-Latn"),
        ("sr-ME", "sr-Latn"),
        ("sr-Latn", "sr-Latn"),
        ("sr_Latn", "sr-Latn"),
        ("sr-latn-rs", "sr-Latn"),
        ("sr-Cyrl", "sr-Cyrl"),
        ("SR-CYRL", "sr-Cyrl"),
        ("sr-Cyrl-BA", "sr-Cyrl"),
        ("sr-RS-Cyrl", "sr-Cyrl"),
        ("cnr", "cnr"),
        ("cnr-ME", "cnr"),
        ("cnr-Latn-ME", "cnr"),
        ("mk", "mk"),
        ("mk-MK", "mk"),
        ("de", "en"),
        ("", "en"),
        (None, "en"),
        ("x-klingon", "en"),
    ],
)
def test_a_directory_language_finds_its_catalog(tag: str | None, code: str) -> None:
    assert match(tag) == code


def test_a_language_without_a_message_falls_back_to_english_not_to_an_error() -> None:
    assert translations("sq").gettext("no such message") == "no such message"
    assert translations("sr").gettext(SUBJECT) == translations("sr-Latn").gettext(SUBJECT)


SUBJECTS = {
    "en": "Liaison: a new notice is waiting for you",
    "sq": "Liaison: një njoftim i ri ju pret",
    "bs": "Liaison: čeka vas novo obavještenje",
    "hr": "Liaison: čeka vas nova obavijest",
    "sr-Latn": "Liaison: čeka vas novo obaveštenje",
    "sr-Cyrl": "Liaison: чека вас ново обавештење",
    "cnr": "Liaison: čeka vas novo obavještenje",
    "mk": "Liaison: ве чека ново известување",
}


@pytest.mark.parametrize("code", EIGHT)
def test_an_alert_is_written_in_the_contacts_language(code: str) -> None:
    message = alert("a@x.invalid", "b@x.invalid", code, "AMBER", "https://l.invalid/ui/", "m1")
    assert message["Subject"] == SUBJECTS[code]
    body = message.get_content()
    assert "TLP:AMBER" in body and "https://l.invalid/ui/" in body
    assert "{" not in body  # every placeholder filled


EXERCISE_TAGS_SHOWN = {
    "en": "[EXERCISE]",
    "sq": "[USHTRIM]",
    "bs": "[VJEŽBA]",
    "hr": "[VJEŽBA]",
    "sr-Latn": "[VEŽBA]",
    "sr-Cyrl": "[ВЕЖБА]",
    "cnr": "[VJEŽBA]",
    "mk": "[ВЕЖБА]",
}


@pytest.mark.parametrize("code", EIGHT)
def test_an_exercise_alert_says_so_first_in_subject_and_body(code: str) -> None:
    message = alert(
        "a@x.invalid", "b@x.invalid", code, "AMBER", "https://l.invalid/", "m1", "exercise"
    )
    assert message["Subject"] == f"{EXERCISE_TAGS_SHOWN[code]} {SUBJECTS[code]}"
    first = message.get_content().splitlines()[0]
    assert first == translations(code).gettext(EXERCISE_LINES["exercise"]) != ""
    test = alert("a@x.invalid", "b@x.invalid", code, "AMBER", "https://l.invalid/", "m1", "test")
    assert test["Subject"].startswith(translations(code).gettext(EXERCISE_TAGS["test"]) + " ")


def test_an_installed_broker_carries_every_catalog() -> None:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, files in [
        ("broker.web", PAGE.glob("*.json")),
        ("broker.locale", [*HERE.glob("*/LC_MESSAGES/*.po"), HERE / "liaison.pot"]),
    ]:
        base = ROOT.joinpath(*package.split("."))
        shipped = {p for pattern in data["package-data"][package] for p in base.glob(pattern)}
        for path in files:
            assert path in shipped, f"{package}: {path.relative_to(base)} is not package data"
