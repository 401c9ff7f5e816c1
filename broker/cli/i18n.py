"""The language the CLI speaks to people: ``--lang``, else ``$LIAISON_LANG``, else the locale.

Only what a recipient or an officer reads is translated (``inbox``, ``read``, ``ack``, ``watch``,
``send``, ``status``, their ``--help``, the broker's refusals (``broker.cli.refusals``) and
``run_command``'s refusal line); operator and admin commands stay in English, and ``--json`` output
is never translated. ``main`` reads ``--lang`` before it builds the parser, for ``--help``.
Messages come from the same gettext catalogs as the e-mail alerts (``broker/locale``), which are
compiled only when a non-English language is chosen, so an English run imports nothing beyond this
module (the CLI imports lazily).

POSIX locales name Serbian by script the other way round from BCP 47: ``sr_RS`` is Cyrillic and
``sr_RS@latin`` is Latin, so ``sr`` from the environment means Cyrillic here (a ``--lang sr`` or
``LIAISON_LANG=sr`` too, for one rule); every other tag is read by ``broker.languages.serving``, as
the broker reads a directory's ``language``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from broker.languages import CODES as CODES
from broker.languages import DEFAULT as DEFAULT
from broker.languages import serving

# Where the language comes from when --lang is not given, first set and understood wins.
ENVIRONMENT = ("LIAISON_LANG", "LANGUAGE", "LC_ALL", "LANG")

_current = DEFAULT


def from_locale(value: str) -> str | None:
    """The supported tag for one locale name (``mk_MK.UTF-8``, ``sr_RS@latin``, ``sr-Cyrl``).

    ``C``/``POSIX`` is English; a language not among the eight is ``None`` (look further).
    """
    name, _at, modifier = value.strip().partition("@")
    name = name.split(".", 1)[0]
    if name in ("C", "POSIX"):
        return DEFAULT
    subtags = name.replace("_", "-").lower().split("-")
    if subtags[0] == "sr":  # POSIX: Cyrillic unless Latin is named (BCP 47 reads it the other way)
        latin = "latn" in subtags[1:] or modifier.lower() == "latin"
        return "sr-Latn" if latin else "sr-Cyrl"
    return serving(name)


def choose(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The tag for this run: ``--lang``, else the first understood variable of ``ENVIRONMENT``.

    ``LANGUAGE`` is a colon-separated list of preferences, tried in order; nothing understood
    means English.
    """
    env = os.environ if environ is None else environ
    if flag:
        return from_locale(flag) or DEFAULT
    for variable in ENVIRONMENT:
        for value in (
            env.get(variable, "").split(":") if variable == "LANGUAGE" else [env.get(variable, "")]
        ):
            if value.strip() and (code := from_locale(value)) is not None:
                return code
    return DEFAULT


def use(code: str) -> None:
    """Speak ``code`` from now on in this process (``main`` calls it once per command)."""
    global _current
    _current = code


def language() -> str:
    return _current


def N_(message: str) -> str:
    """Marks a message for ``make messages`` (``-k N_``) where it is chosen before ``_``."""
    return message


def _(message: str, **fields: object) -> str:
    """``message`` in the chosen language, its ``{fields}`` filled in after translating."""
    text = message
    if _current != DEFAULT:
        from broker.locale import translations

        text = translations(_current).gettext(message)
    return text.format(**fields) if fields else text
