"""JSON Schema checks on the hot path: a compiled Rust validator says yes, ``jsonschema`` says no.

A notice's envelope and its payload are checked on every intake. ``jsonschema`` (pure Python)
costs a tenth of a millisecond per document; ``jsonschema-rs`` compiled once per schema costs a
few microseconds. The two must agree on every document, so the fast validator is only ever
trusted to *accept*:

- when it accepts, the document is accepted; when it refuses (or cannot read the document),
  ``jsonschema`` decides and explains, so every refusal keeps today's pointers and messages, and
  a document the fast one refuses but ``jsonschema`` accepts is still accepted;
- it is used only on schemas and documents where it is known to be no more lenient than
  ``jsonschema``: no ``format`` that the Python format checker checks, no ``multipleOf``
  (float remainders differ), regular expressions only from a subset whose meaning is the same
  or stricter in Rust (``$`` there does not match before a final newline, ``\\d`` and ``\\w``
  are ASCII), and documents whose integers fit 64 bits, whose floats are finite and whose
  strings are valid Unicode (jsonschema-rs wraps larger integers: it would compare another
  number);
- no schema is ever fetched: the compiled validator is offline, and a schema it cannot compile
  is left to ``jsonschema`` alone.
tests/unit/test_schema_check.py checks the agreement differentially (hypothesis).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import jsonschema
import jsonschema_rs

MIN_INT, MAX_INT = -(2**63), 2**64 - 1  # what jsonschema-rs reads without wrapping

# One regex token whose meaning in Python's ``re`` is the same as in the Rust engine, or broader:
# literals, escaped metacharacters, \d and \w (Unicode in Python, ASCII in Rust), positive
# classes of literals and ranges (never negated), groups without flags, alternation, anchors
# and quantifiers.
_CLASS_ITEM = r"(?:[A-Za-z0-9 _.:/@,=#%&'!<>~;+*?()|${}-]|\\[dw.\\/\-\[\]^$*+?(){}|])"
_TOKEN = (
    r"(?:\\[dw.\\/\-\[\]^$*+?(){}|]"  # an escape
    rf"|\[{_CLASS_ITEM}+\]"  # a positive class
    r"|\{[0-9]+(?:,[0-9]*)?\}"  # a bounded quantifier
    r"|\(\?:|\((?!\?)|[)|^$.*+?]"  # groups without flags, alternation, anchors, quantifiers
    r"|[A-Za-z0-9 _:/@,=#%&'!<>~;\"-])"  # a literal
)
_SAFE_PATTERN = re.compile(rf"{_TOKEN}*")


# The ``format``s checked are fixed here, not by which optional packages happen to be importable:
# jsonschema checks ``date-time`` only when rfc3339-validator is installed (a test dependency pulls
# it in), which would change what is refused, with which message, and which schemas the fast
# validator may take. These need nothing beyond the standard library; times are parsed by our own
# code, with its own messages ("needs a timezone").
STABLE_FORMATS = ("email", "idn-email", "ipv4", "ipv6", "regex", "date", "uuid")


def format_checker() -> jsonschema.FormatChecker:
    """A checker of exactly ``STABLE_FORMATS``, wherever Liaison is installed."""
    known = jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers
    return jsonschema.FormatChecker(formats=[f for f in STABLE_FORMATS if f in known])


class CompiledSchema:
    """One schema, compiled once: ``errors(document)`` as ``jsonschema`` would yield them."""

    def __init__(
        self, schema: dict[str, Any], format_checker: jsonschema.FormatChecker | None = None
    ) -> None:
        self.schema = schema
        self._explain = jsonschema.Draft202012Validator(schema, format_checker=format_checker)
        checked = frozenset(format_checker.checkers) if format_checker else frozenset()
        self._fast = _compile(schema) if _trusted(schema, checked) else None

    @property
    def compiled(self) -> bool:
        """True when the fast validator is in use for this schema (for tests and the bench)."""
        return self._fast is not None

    def errors(self, document: Any) -> Iterator[jsonschema.ValidationError]:
        """Every violation of ``document``; none when it is valid."""
        if self._fast is not None and _readable(document):
            try:
                if self._fast.is_valid(document):
                    return iter(())
            except (ValueError, TypeError, OverflowError):
                pass  # a value the Rust side cannot read: jsonschema decides
        return self._explain.iter_errors(document)


def _compile(schema: dict[str, Any]) -> jsonschema_rs.Validator | None:
    try:
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=False, offline=True)
    except (jsonschema_rs.ValidationError, ValueError, TypeError):
        return None


def _trusted(schema: Any, checked_formats: frozenset[str]) -> bool:
    """True when no keyword of ``schema`` could make the fast validator more lenient."""
    if isinstance(schema, list):
        return all(_trusted(s, checked_formats) for s in schema)
    if not isinstance(schema, dict):
        return True
    return all(
        not _risky(key, value, checked_formats) and _trusted(value, checked_formats)
        for key, value in schema.items()
    )


def _risky(key: str, value: Any, checked_formats: frozenset[str]) -> bool:
    if key == "format":
        return isinstance(value, str) and value in checked_formats
    if key == "multipleOf":
        return True  # float remainders: Python and Rust disagree on large floats (1.6e224 % 3)
    if key == "pattern":
        return isinstance(value, str) and not _SAFE_PATTERN.fullmatch(value)
    if key == "patternProperties" and isinstance(value, dict):
        return not all(_SAFE_PATTERN.fullmatch(p) for p in value)
    return False


def _readable(document: Any) -> bool:
    """True when jsonschema-rs reads ``document`` as Python does (see the module docstring)."""
    if isinstance(document, str):
        return document.isascii() or _unicode(document)
    if isinstance(document, bool) or document is None:
        return True
    if isinstance(document, int):
        return MIN_INT <= document <= MAX_INT
    if isinstance(document, float):
        return document - document == 0.0  # finite: inf - inf and nan - nan are nan
    if isinstance(document, dict):
        return all(
            isinstance(k, str) and _readable(k) and _readable(v) for k, v in document.items()
        )
    if isinstance(document, list):
        return all(_readable(v) for v in document)
    return False  # tuples, bytes and other non-JSON values: jsonschema decides


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON escapes can carry
        return False
    return True


_CACHE: OrderedDict[int, CompiledSchema] = OrderedDict()
_CACHE_SIZE = 256  # channels of a few policy revisions; each entry keeps its schema alive


def compiled(schema: dict[str, Any]) -> CompiledSchema:
    """The compiled form of ``schema``, built on first use and kept while the schema is in use.

    Keyed by identity (a channel's schema is built once per policy load and never changed); the
    entry holds the schema, so its id cannot be reused by another object while cached.
    """
    entry = _CACHE.get(id(schema))
    if entry is None or entry.schema is not schema:
        entry = _CACHE[id(schema)] = CompiledSchema(schema)
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return entry
