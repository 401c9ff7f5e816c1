"""The CLI's language: which one a run picks, and that every catalog translates every message."""

from __future__ import annotations

import ast
import re

import pytest
from babel.messages.pofile import read_po

from broker import locale
from broker.cli import i18n
from broker.cli.main import build_parser

TEMPLATE = locale.HERE / "liaison.pot"
# Every module of the CLI (not its operator commands, which stay in English).
CLI_SOURCES = tuple(sorted(p.name for p in (locale.HERE.parent / "cli").glob("*.py")))


PLACEHOLDER = r"\{\w+\}|%\(\w+\)[sr]|%[sr]"
# Words that read the same in some of the languages.
SAME_IN_SOME_LANGUAGES = ("(as {role})",)


def cli_msgids() -> set[str]:
    """Every message the CLI sources pass to ``_`` or mark with ``N_`` (literal first argument)."""
    found: set[str] = set()
    for name in CLI_SOURCES:
        text = (locale.HERE.parent / "cli" / name).read_text()
        for match in re.finditer(r'\bN?_\(\s*"((?:[^"\\]|\\.)*)"', text):
            found.add(
                ast.literal_eval(f'"{match.group(1)}"')
            )  # its escapes (\\n) read as Python does
    return found


def test_the_cli_marks_messages_and_the_template_has_them() -> None:
    ids = cli_msgids()
    assert len(ids) >= 15 and "No notices." in ids
    with TEMPLATE.open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    assert ids <= template, ids - template  # `make messages` was run after the code changed


@pytest.mark.parametrize("code", list(locale.LANGUAGES))
def test_every_cli_message_is_translated_in_every_catalog(code: str) -> None:
    with locale.catalog_path(code).open("rb") as f:
        catalog = read_po(f)
    for msgid in cli_msgids():
        message = catalog.get(msgid)
        assert message is not None and message.string, (code, msgid)
        assert "fuzzy" not in message.flags, (code, msgid)
        # {fields} for ours, %-placeholders for argparse's own (broker/cli/argparse_texts.py).
        placeholders = sorted(re.findall(PLACEHOLDER, msgid))
        assert sorted(re.findall(PLACEHOLDER, message.string)) == placeholders, (code, msgid)
        assert message.string.endswith("\n") == msgid.endswith("\n"), (code, msgid)
        if code not in ("en",) and msgid not in SAME_IN_SOME_LANGUAGES:
            assert message.string != msgid, (code, msgid)  # a translation, not a copy


def test_serbian_cyrillic_has_no_latin_words_but_the_untranslatable() -> None:
    with locale.catalog_path("sr-Cyrl").open("rb") as f:
        catalog = read_po(f)
    for msgid in cli_msgids():
        # Names and formats stay as written: placeholders, --flags, files, CAP, XML, SHA, and
        # what --help names as typed ($VARIABLES, %(default)s, paths, media types, Ctrl-C).
        left = re.sub(
            r"\{\w+\}|--\S+|[A-Z]+\.(json|xml)|X25519|Ed25519|liaison|[A-Z]{2,}"
            r"|\$\w+|%\(\w+\)[sr]|%[sr]|sha256|[\w$.+-]*[./_][\w$.+/-]+|Ctrl-C",
            "",
            catalog[msgid].string,
        )
        assert not re.search(r"[A-Za-zčćšžđČĆŠŽĐ]", left), catalog[msgid].string


def test_the_codes_are_the_catalogs() -> None:
    assert tuple(locale.LANGUAGES) == i18n.CODES


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "en"),
        ({"LANG": "mk_MK.UTF-8"}, "mk"),
        ({"LANG": "sr_RS.UTF-8"}, "sr-Cyrl"),
        ({"LANG": "sr_RS@latin"}, "sr-Latn"),
        ({"LANG": "sr_RS.UTF-8@latin"}, "sr-Latn"),
        ({"LANG": "sr"}, "sr-Cyrl"),
        ({"LANG": "sq_AL.UTF-8"}, "sq"),
        ({"LANG": "bs_BA.UTF-8"}, "bs"),
        ({"LANG": "hr_HR.UTF-8"}, "hr"),
        ({"LANG": "cnr_ME.UTF-8"}, "cnr"),
        ({"LANG": "me_ME.UTF-8"}, "cnr"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LC_ALL": "hr_HR.UTF-8", "LANG": "mk_MK.UTF-8"}, "hr"),
        ({"LC_ALL": "C", "LANG": "mk_MK.UTF-8"}, "en"),
        ({"LANGUAGE": "de:sq", "LC_ALL": "mk_MK"}, "sq"),
        ({"LANGUAGE": "", "LANG": "mk_MK"}, "mk"),
        ({"LIAISON_LANG": "sr-Latn", "LANGUAGE": "mk", "LANG": "hr_HR"}, "sr-Latn"),
        ({"LIAISON_LANG": "sr-Cyrl"}, "sr-Cyrl"),
    ],
)
def test_the_language_comes_from_the_environment(environ: dict[str, str], expected: str) -> None:
    assert i18n.choose(None, environ) == expected


def test_the_flag_wins_over_the_environment() -> None:
    assert i18n.choose("cnr", {"LIAISON_LANG": "mk", "LANG": "hr_HR"}) == "cnr"
    assert build_parser().parse_args(["--lang", "sr-Cyrl", "inbox"]).lang == "sr-Cyrl"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--lang", "xx", "inbox"])


def test_messages_are_translated_then_filled_in() -> None:
    try:
        i18n.use("mk")
        assert i18n._("Acknowledged {id} at {at}", id="{x}", at="t") == "Потврдено {x} во t"
        i18n.use("en")
        assert i18n._("No notices.") == "No notices."
    finally:
        i18n.use("en")


def test_an_officials_help_is_in_the_cli_language_and_an_operators_stays_english(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.cli.main import main

    monkeypatch.setenv("LIAISON_LANG", "mk")
    monkeypatch.setattr(i18n, "_current", i18n.DEFAULT)  # main() sets it; put back after
    with pytest.raises(SystemExit):
        main(["read", "--help"])
    shown = capsys.readouterr().out
    assert shown.startswith("употреба: liaison read ")
    assert "преземи известување, дешифрирај го тука и провери го потписот на агенцијата" in shown
    assert "прикажи ја оваа помош и излези" in shown
    assert "твојот X25519 клуч за дешифрирање (PKCS#8 PEM)" in shown
    with pytest.raises(SystemExit):  # --lang before the command wins over the environment
        main(["--lang", "sq", "send", "--help"])
    shown = capsys.readouterr().out
    assert shown.startswith("përdorimi: liaison send ")
    assert "me --cap: kanali (parazgjedhur: public-safety-alert)" in shown
    with pytest.raises(SystemExit):
        main(["--lang=sr-Cyrl", "directory", "apply", "--help"])
    assert "usage: liaison directory apply" in capsys.readouterr().out  # admin: English


def test_argparse_speaks_the_officials_language_in_help_and_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import gettext

    from broker.cli.main import main

    monkeypatch.setenv("LIAISON_LANG", "mk")
    monkeypatch.setattr(i18n, "_current", i18n.DEFAULT)
    with pytest.raises(SystemExit):
        main(["read", "--help"])
    shown = capsys.readouterr().out
    assert "позициони аргументи:" in shown and "опции:" in shown
    assert "positional arguments" not in shown and "options:" not in shown
    with pytest.raises(SystemExit) as exited:
        main(["read"])  # the notice id missing
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("употреба: liaison read ")
    assert error.endswith("liaison read: грешка: потребни се следниве аргументи: NOTICE_ID\n")
    with pytest.raises(SystemExit):
        main(["--lang", "hr", "inbox", "--status", "lost"])
    assert "parametar --status: nevažeći izbor: 'lost' (odaberite između" in capsys.readouterr().err
    # An operator's command stays English, and argparse is itself again after an official's.
    with pytest.raises(SystemExit):
        main(["directory", "apply"])
    assert "error: the following arguments are required" in capsys.readouterr().err
    assert getattr(argparse, "_") is gettext.gettext  # noqa: B009


def test_an_unknown_option_is_refused_in_the_officials_language_by_the_command() -> None:
    import subprocess
    import sys

    ran = subprocess.run(
        [sys.executable, "-m", "broker.cli", "--lang", "sq", "inbox", "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2 and ran.stdout == ""
    assert ran.stderr.splitlines()[-1] == "liaison: gabim: argumente të panjohura: --bogus"


def test_the_officials_commands_known_before_parsing_are_those_registered_as_such() -> None:
    from broker.cli.common import PERSON
    from broker.cli.main import PERSON_COMMANDS

    build_parser()
    assert PERSON == PERSON_COMMANDS
