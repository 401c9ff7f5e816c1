"""The region's eight interface languages, and which of them serves a language tag.

One rule for every place a tag arrives — a directory contact's ``language``
(``broker.locale.match``), an ``Accept-Language`` header or a policy file's tag
(``broker.titles.supported``), a CAP ``info`` block's ``language``
(``broker.cap.languages.page_language``) and, after its POSIX reading of Serbian, the CLI's
locale (``broker.cli.i18n.from_locale``):

1. the tag itself, case and ``_`` tolerated (``sr-Cyrl``, ``SR_LATN``, ``cnr``, ``hr``);
2. Serbian (``sr``, ``sr-RS``, ``sr-Cyrl-BA``, ``sr-RS-Cyrl``): Cyrillic when a ``Cyrl``
   subtag is given, else Latin — Latin is what most of the region's Serbian speakers write;
3. Montenegrin as ``cnr`` (ISO 639-3) or ``me`` (the country code people write for it);
4. the primary subtag when it is one of the eight (``mk-MK`` → ``mk``, ``sq-XK`` → ``sq``);
5. otherwise none: a caller that needs a language falls back to English itself.

No transliteration and no guessing between neighbours: ``bs``, ``hr``, ``sr`` and ``cnr`` are
never substituted for one another. Pure: no I/O and no imports, so the policy core and the
CLI's start-up can use it. The web inbox applies the same rules (``broker/web/static/i18n.js``,
compared by tests/e2e/test_web_languages.py).
"""

from __future__ import annotations

# The supported tags, each with its name in its own language, in the order the page lists them.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "sq": "Shqip",
    "bs": "Bosanski",
    "hr": "Hrvatski",
    "sr-Latn": "Srpski (latinica)",
    "sr-Cyrl": "Српски (ћирилица)",
    "cnr": "Crnogorski",
    "mk": "Македонски",
}
CODES = tuple(LANGUAGES)
DEFAULT = "en"
MONTENEGRIN = ("cnr", "me")


def serving(tag: str | None) -> str | None:
    """The one of ``CODES`` that serves a BCP 47 ``tag``, or None when none does."""
    subtags = (tag or "").strip().replace("_", "-").lower().split("-")
    whole = "-".join(subtags)
    for code in CODES:
        if code.lower() == whole:
            return code
    primary, rest = subtags[0], subtags[1:]
    if primary == "sr":
        return "sr-Cyrl" if "cyrl" in rest else "sr-Latn"
    if primary in MONTENEGRIN:
        return "cnr"
    return primary if primary in CODES else None
