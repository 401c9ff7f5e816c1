"""Bounds on what a client sends, checked before parsing and before the store. Pure: no I/O.

Invariants:
- JSON is measured before it is parsed: a body nested deeper than the limit is refused by a
  linear scan of its brackets (outside strings), so no parser recursion is ever reached;
- every integer a client sends (cursor, event id, proof index) is non-negative and fits in a
  signed 64-bit column, so neither SQLite nor PostgreSQL sees a number it cannot store;
- no NUL or other control character reaches the store in an id or key, and no NUL in any JSON
  text (PostgreSQL cannot store it; a driver error would answer 503 instead of the refusal);
- a refusal names where (``pointer``), never echoes what was sent;
- ``parse_json`` reads exactly what ``json.loads`` reads, as it reads it: orjson only answers
  where the two agree, and ``json.loads`` decides everything else (tests/unit/test_json_fast.py).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import orjson

from broker.errors import ControlCharacter, KeyInvalid, NestingTooDeep, NumberOutOfRange

MAX_INT64 = 2**63 - 1
MAX_KEY_CHARS = 128  # an Idempotency-Key, as the body's idempotency_key (and its column)

# A string runs to its closing quote, or to the end when unterminated: the match never fails once
# started, so the scan stays linear whatever the body (possessive, no backtracking).
_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.?)*+"?', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PRINTABLE_KEY = re.compile(r"[\x20-\x7e]+")
# 19 digits in a row: maybe an integer beyond 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def check_json_depth(body: bytes, max_depth: int) -> None:
    """``NestingTooDeep`` when any array or object in ``body`` lies deeper than ``max_depth``.

    Brackets inside strings do not count; malformed JSON is left for the parser to refuse.
    """
    depth = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise NestingTooDeep(
                    f"the JSON is nested deeper than {max_depth} levels", detail="json depth"
                )
        else:
            depth = max(0, depth - 1)


def parse_json(body: bytes) -> Any:
    """``json.loads(body)``, several times faster on the bodies clients send.

    orjson refuses what it reads differently from ``json`` (NaN and Infinity, numbers that
    overflow, lone surrogates, a byte order mark, UTF-16 or UTF-32), and reads duplicate keys as
    ``json`` does (the last one wins, in the first one's place); integers beyond 64 bits, which it
    would turn into floats, never reach it. Whatever it refuses, ``json.loads`` decides as before.
    Depth is not checked here: call ``check_json_depth`` first.
    """
    if not _LONG_DIGITS.search(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def check_integer(number: int, pointer: str) -> int:
    """``number`` when it is a non-negative signed 64-bit integer, else ``NumberOutOfRange``."""
    if not 0 <= number <= MAX_INT64:
        raise NumberOutOfRange(
            f"must be a whole number from 0 to {MAX_INT64}", pointer=pointer, detail=pointer
        )
    return number


def check_identifier(value: str, pointer: str) -> str:
    """``value`` when it holds no control character (a path id, a query value, a reference)."""
    if _CONTROL.search(value):
        raise ControlCharacter(
            "control characters are not allowed here", pointer=pointer, detail=pointer
        )
    return value


def check_key(value: str, pointer: str = "Idempotency-Key") -> str:
    """An idempotency key: 1 to ``MAX_KEY_CHARS`` printable ASCII characters."""
    if not (len(value) <= MAX_KEY_CHARS and _PRINTABLE_KEY.fullmatch(value)):
        raise KeyInvalid(
            f"must be 1 to {MAX_KEY_CHARS} printable ASCII characters",
            pointer=pointer,
            detail=pointer,
        )
    return value


def check_no_nul(document: Any, pointer: str = "") -> None:
    """``ControlCharacter`` at the first NUL in any string (or member name) of parsed JSON."""
    if isinstance(document, str):
        if "\x00" in document:
            raise ControlCharacter("NUL is not allowed in text", pointer=pointer, detail=pointer)
    elif isinstance(document, dict):
        for name, value in document.items():
            where = f"{pointer}/{_escape(name)}"
            check_no_nul(name, where)
            check_no_nul(value, where)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            check_no_nul(value, f"{pointer}/{index}")


def _escape(name: str) -> str:
    """A member name as a JSON pointer token (RFC 6901), without the NUL it may hold."""
    return name.replace("~", "~0").replace("/", "~1").replace("\x00", "")


def rfc3339_time(value: object) -> datetime | None:
    """An RFC 3339 ``date-time`` (with its offset) as an aware datetime; None for anything else."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:  # in the grammar but not on the calendar: 2027-02-30, 25:00
        return None
