"""Messages to people in the region's eight languages, from gettext catalogs.

``broker/locale/<tag>/LC_MESSAGES/liaison.po`` holds one catalog per BCP 47 tag in ``LANGUAGES``;
``liaison.pot`` is the template (``make messages`` extracts it from the code and merges it into
every catalog). The .po files are compiled in memory through Babel the first time a language is
used, so no compiled .mo file is committed or can go stale beside its source.

A directory ``language`` is matched to a catalog by ``match``: the rules of
``broker.languages.serving`` (exact tags, Serbian in Latin unless Cyrillic is asked for,
``me`` as Montenegrin, the primary subtag), then English.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from broker.languages import DEFAULT as DEFAULT
from broker.languages import LANGUAGES as LANGUAGES
from broker.languages import serving

HERE = Path(__file__).parent
DOMAIN = "liaison"


def N_(message: str) -> str:
    """Marks a message for ``pybabel extract`` (gettext's ``N_``) without translating it here."""
    return message


def match(tag: str | None) -> str:
    """The supported tag that serves a BCP 47 ``tag`` (``broker.languages.serving``), else English."""
    return serving(tag) or DEFAULT


def catalog_path(code: str) -> Path:
    return HERE / code / "LC_MESSAGES" / f"{DOMAIN}.po"


def translations(tag: str | None) -> gettext.GNUTranslations:
    """The compiled catalog for ``tag`` (matched), falling back to English message by message."""
    return _translations(match(tag))


@cache
def _translations(code: str) -> gettext.GNUTranslations:
    compiled = _compile(code)
    if code != DEFAULT:
        compiled.add_fallback(_compile(DEFAULT))
    return compiled


def gettext_for(tag: str | None, message: str) -> str:
    return translations(tag).gettext(message)


def _compile(code: str) -> gettext.GNUTranslations:
    with catalog_path(code).open("rb") as source:
        catalog = read_po(source, domain=DOMAIN)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)
