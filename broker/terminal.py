"""Text from others, made safe to print on a terminal.

Attacker: an authorised agency (or the broker's host) that puts terminal control sequences in
what a recipient's terminal shows — ``\\x1b[2K\\rSigned by Ministry of Interior`` in a subject
erases the real "Signed by" line and writes another. Invariants of ``safe``:

- its output contains no character of the Unicode categories Cc (C0, DEL, C1 controls), Cf
  (format: bidi embeddings, overrides and isolates such as U+202E, zero-width characters),
  Zl, Zp (line and paragraph separators), Cs (lone surrogates) or Cn (unassigned, so a
  format character of a newer Unicode than ours is escaped too); with ``multiline=True`` the
  one exception is ``\\n``;
- each such character is shown, not dropped, as a JSON string escape (``\\u001b``, ``\\r``,
  ``\\u202e``, a surrogate pair above U+FFFF), so the reader sees that something was there, and
  a JSON document printed through ``safe`` stays valid and decodes to the same value;
- everything else, letters of every script included (Shkodër, Ilidža, Београд), is unchanged.

Every line the ``liaison`` CLI prints goes through ``safe_print``, and each untrusted field
(subject, names, channel, ids, replies, error details) through ``safe`` before it is placed in a
line, so a newline in a field cannot forge a line of its own either.
"""

from __future__ import annotations

import sys
import unicodedata
from typing import IO, Any

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    """A JSON-compatible escape, so ``safe`` keeps a JSON document valid and lossless."""
    if char in NAMED:
        return NAMED[char]
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def is_unsafe(char: str) -> bool:
    """Whether a terminal might act on this character instead of showing it."""
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def safe(text: object, *, multiline: bool = False) -> str:
    """``text`` (``str()`` of it) with every unsafe character written as a visible escape."""
    value = text if isinstance(text, str) else str(text)
    if value.isprintable():
        return value  # the common case; every unsafe category is also not printable
    return "".join(
        c if (multiline and c == "\n") or not is_unsafe(c) else _escaped(c) for c in value
    )


def safe_print(
    *values: Any, sep: str = " ", end: str = "\n", file: IO[str] | None = None, flush: bool = False
) -> None:
    """``print`` with the joined text made safe; the lines' own newlines are kept."""
    stream = sys.stdout if file is None else file
    stream.write(safe(sep.join(str(v) for v in values), multiline=True) + end)
    if flush:
        stream.flush()
