"""An alert's ``info`` blocks, one per language: which one a reader sees, and what else there is.

A CAP alert may say the same thing in several languages, one ``info`` block each, tagged with an
RFC 3066 ``language`` (absent means ``en-US``). Import keeps every block (the carried original);
a reader is shown the block in their language and told which other languages the alert has.

Invariants:
- a tag maps to one of the eight interface languages by ``broker.languages.serving``
  (``mk-MK`` → ``mk``, ``sr`` → ``sr-Latn`` unless ``Cyrl`` is given, ``me``/``cnr-ME`` →
  ``cnr``); a tag outside the eight maps to nothing, not to English;
- the reader's block is the first whose language maps to the reader's, else the alert's first
  block: a reader is never shown nothing, and never a block chosen by the broker;
- the web inbox applies the same rules (``broker/web/static/cap.js``; a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.cap.document import NS, text
from broker.languages import serving

DEFAULT_TAG = "en-US"  # CAP 1.2 §3.2.2: the language of an info block without one
# The text of an info block a reader reads, with the notice body field each maps to.
SHOWN = {
    "event": "event",
    "headline": "headline",
    "description": "description",
    "instruction": "instruction",
    "senderName": "sender_name",
    "audience": "audience",
    "web": "web",
    "contact": "contact",
}


@dataclass(frozen=True)
class Block:
    tag: str  # as the alert gives it
    language: str | None  # one of the eight, or None
    fields: dict[str, str]  # body field → text, only those the block has
    area: str


def page_language(tag: str | None) -> str | None:
    """The interface language (of the eight) that serves a CAP language tag, or None."""
    return serving(tag)


def blocks(root: Any) -> list[Block]:
    """Every info block of a parsed alert, in document order."""
    found = []
    for info in root.findall(f"{{{NS}}}info"):
        tag = text(info, "language") or DEFAULT_TAG
        fields = {
            field: value for element, field in SHOWN.items() if (value := text(info, element))
        }
        areas = [text(a, "areaDesc") or "" for a in info.findall(f"{{{NS}}}area")]
        found.append(Block(tag, page_language(tag), fields, "; ".join(a for a in areas if a)))
    return found


def choose(found: list[Block], reader: str) -> tuple[Block, list[Block]]:
    """The block for a reader of ``reader`` (one of the eight) and the other blocks."""
    chosen = next((b for b in found if b.language == reader), found[0])
    return chosen, [b for b in found if b is not chosen]


def localised(notice: dict[str, Any], chosen: Block) -> tuple[str, dict[str, Any]]:
    """The subject and body to show: the chosen block's headline (else event) and text in
    place of the first block's; every other field as the notice has it."""
    body = notice.get("body")
    given: dict[str, Any] = body if isinstance(body, dict) else {}
    shown = {k: v for k, v in given.items() if k not in SHOWN.values()}
    shown.update({k: v for k, v in chosen.fields.items() if k != "headline"})
    shown["language"] = chosen.tag
    if chosen.area:
        shown["area"] = chosen.area
    subject = chosen.fields.get("headline") or chosen.fields.get("event")
    return str(subject or notice.get("subject") or ""), shown
