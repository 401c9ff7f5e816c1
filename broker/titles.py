"""Names in the region's eight languages, as policy and directory files write them.

A translatable value (a channel's ``title``, a field or enum value label, a jurisdiction's or an
organisation's ``name``, a role's ``title``) is either plain text, the same in every language,
or a mapping from a language tag to text::

    title: {en: Returnee repatriation, mk: Враќање на повратници, sq: Riatdhesimi i të kthyerve}

Invariants:
- the tags are exactly the eight of ``broker.locale.LANGUAGES`` (``sr-Latn``, never ``sr``);
  any other key is refused with the file and line of that key;
- the *default* text is the ``en`` entry, else the mapping's first entry (the file's own
  language); it is what English readers, operators and the audit log see;
- a language the mapping lacks reads the default: never another language's text, and never a
  transliteration (Serbian Cyrillic and Latin are translated separately or not at all).
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.domain.directory import Translations as Translations
from broker.domain.directory import pick as pick
from broker.errors import SourceProblem
from broker.languages import CODES as CODES
from broker.languages import DEFAULT as DEFAULT
from broker.languages import serving


def text_schema(max_length: int) -> dict[str, Any]:
    """The JSON Schema of a translatable value; tags are checked by ``read`` (file:line)."""
    text = {"type": "string", "minLength": 1, "maxLength": max_length}
    return {
        "anyOf": [
            text,
            {
                "type": "object",
                "minProperties": 1,
                # No maxProperties: a ninth key is an unknown tag, named at its line by read().
                "additionalProperties": text,
            },
        ]
    }


@dataclass(frozen=True, slots=True)
class Text:
    """One translatable value: its default and its translations."""

    default: str
    translations: Translations = ()

    def pick(self, language: str | None) -> str:
        return pick(self.default, self.translations, language)

    def as_dict(self) -> dict[str, str]:
        return dict(self.translations)


def read(value: Any, where: Sequence[str | int], problem: Any) -> tuple[Text, list[SourceProblem]]:
    """A schema-valid translatable value as ``Text``; ``problem(pointer, reason)`` names a line."""
    if isinstance(value, str):
        return Text(value), []
    problems = [problem((*where, tag), _unknown(tag)) for tag in value if tag not in CODES]
    pairs = tuple((tag, text) for tag, text in value.items() if tag in CODES)
    default = dict(pairs).get(DEFAULT) or (pairs[0][1] if pairs else "")
    return Text(default, pairs), problems


def _unknown(tag: str) -> str:
    hint = " (write sr-Latn or sr-Cyrl)" if tag.lower() == "sr" else ""
    return f"unknown language tag {tag!r}{hint}: use one of {', '.join(CODES)}"


def supported(tag: str) -> str | None:
    """The one of ``CODES`` that serves a BCP 47 ``tag`` (``broker.languages.serving``), or None."""
    return serving(tag)


def from_accept_language(header: str | None) -> str | None:
    """The reader's language from an ``Accept-Language`` header (RFC 9110 §12.5.4): the
    supported tag of highest weight, ties in header order; None when none is supported."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")[:32]):
        tag, _sep, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        code = supported(tag) if tag and tag != "*" else None
        if code is not None and weight > 0:
            ranked.append((-weight, position, code))
    return min(ranked)[2] if ranked else None
