"""Audit events and their canonical bytes: exactly what is hashed, stored and exported.

Invariants: an event never holds notice contents (no subject, body, ciphertext, wrap or key);
the same bytes are the Merkle leaf data, the stored body and the export line. Two leaf formats:

- **v2** (every event written now): RFC 8785 (JCS) canonical JSON of the record with ``"v":2``,
  so any language's JCS re-derives the bytes from the parsed event; its values are those JCS
  allows (no NaN or infinity, integers within +-(2**53 - 1), string keys);
- **v1** (events written before v2; never written now, always verified): one line of JSON in a
  fixed key order, ``seq`` first and ``prev`` second, as ``json.dumps(separators=(",", ":"),
  ensure_ascii=False)`` writes it. Those bytes are kept as they are: rewriting them would change
  every leaf hash and so every root that auditors hold signed checkpoints of.

A log is a v1 prefix (possibly empty) followed by v2 events; each leaf says its own format (a v2
leaf has a top-level ``"v"``, a v1 leaf never has), so a verifier needs no other hint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import rfc8785

GENESIS = "0" * 64
LEAF_FORMAT = 2  # the "v" of every leaf written now
FIELDS = (
    "seq",
    "prev",
    "at",
    "actor",
    "action",
    "object",
    "channel",
    "decision",
    "policies",
    "request",
    "outcome",
    "reason",
    "details",
)


@dataclass(frozen=True)
class AuditEvent:
    """One recorded action, before it has a place in the log."""

    at: datetime
    actor: str  # "agency:mk-mvr", "contact:mk-kumanovo-pcve", "operator:root", "broker", "unknown"
    action: str  # "notice.posted", "notice.routed", "delivery.acknowledged", ...
    object: str  # "notice:<id>", "directory:<revision>", "policy:<hash>", ...
    outcome: str = "ok"  # ok | refused | failed
    channel: str | None = None
    decision: str | None = None  # allow | deny, for decisions
    policies: tuple[str, ...] = ()
    reason: str | None = None  # a stable code, for refusals
    details: dict[str, Any] = field(default_factory=dict)
    # The id of the request that caused it, passed by the caller (through every queue); None
    # for the broker's own background work. Never read from ambient (logging) context.
    request: str | None = None

    @property
    def notice_id(self) -> str | None:
        return self.object.removeprefix("notice:") if self.object.startswith("notice:") else None


def _record(event: AuditEvent, seq: int, prev: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "prev": prev,
        "at": event.at.isoformat().replace("+00:00", "Z"),
        "actor": event.actor,
        "action": event.action,
        "object": event.object,
        "channel": event.channel,
        "decision": event.decision,
        "policies": list(event.policies),
        "request": event.request,
        "outcome": event.outcome,
        "reason": event.reason,
        "details": event.details,
    }


def canonical(event: AuditEvent, seq: int, prev: str) -> bytes:
    """The event's leaf bytes as written now (format v2, RFC 8785): leaf data and export line.

    ``rfc8785.CanonicalizationError`` (a ValueError) for a value JCS cannot carry: a float NaN
    or infinity, an integer beyond 2**53 - 1, a non-string key, a lone surrogate, another type.
    """
    record = _record(event, seq, prev)
    record["v"] = LEAF_FORMAT
    return jcs(record)


def canonical_v1(event: AuditEvent, seq: int, prev: str) -> bytes:
    """The v1 leaf bytes (fixed key order), as the broker wrote them before v2; for tests and
    for tools that re-derive an old leaf from its event."""
    return _dumps(_record(event, seq, prev))


# -- v2: RFC 8785 ------------------------------------------------------------------------------
# The ``rfc8785`` library is the definition used here, but it is pure Python (about 100 us for a
# typical event, against 2-3 us for orjson). orjson with sorted keys writes the same bytes for
# str, bool, None, integers within JCS's range, and lists, tuples and dicts of those whose keys
# are ASCII: its string escapes are JCS's (\b \f \n \r \t, other controls as \u00xx, nothing
# else escaped) and for ASCII keys code-point order is UTF-16 order. Anything else (floats,
# big integers, non-ASCII keys, subclasses, other types) is rfc8785's to write or refuse; a
# property test holds the two to the same bytes or the same refusal (test_audit_canonical.py).
_JCS_INT = 2**53 - 1


def jcs(record: Any) -> bytes:
    """RFC 8785 canonical JSON of ``record`` (UTF-8), or ``rfc8785.CanonicalizationError``."""
    if _jcs_fast(record):
        try:
            return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it in its own words
    try:
        return rfc8785.dumps(record)
    except UnicodeEncodeError as e:  # a lone surrogate in a key, which rfc8785 lets through
        raise rfc8785.CanonicalizationError("input contains non-UTF-8 codepoints") from e


def _jcs_fast(value: Any) -> bool:
    """Whether ``value`` holds only what orjson writes as JCS does (loops, not generators: this
    runs for every audit event written and every leaf verified)."""
    kind = type(value)
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                return False
            t = type(v)
            if t is str or t is bool or v is None:
                continue
            if t is int:
                if not -_JCS_INT <= v <= _JCS_INT:
                    return False
            elif not _jcs_fast(v):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_JCS_INT <= value <= _JCS_INT)
    if kind is list or kind is tuple:
        for v in value:  # noqa: SIM110 - a loop: no generator object per list, on the hot path
            if type(v) is not str and not _jcs_fast(v):
                return False
        return True
    return False


def _jcs_values(value: Any) -> bool:
    """``_jcs_fast`` for what orjson parsed from ASCII bytes, keys unchecked: they are str, and a
    non-ASCII one came from a \\u escape, which neither encoder writes (the bytes then differ
    from both, whichever decides). A third cheaper per leaf verified."""
    kind = type(value)
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return kind is str or kind is bool or value is None or _jcs_fast(value)
    for v in value:
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if not -_JCS_INT <= v <= _JCS_INT:
                return False
        elif not _jcs_values(v):
            return False
    return True


def _jcs_number(text: str) -> int | float:
    value = int(text)
    return value if -_JCS_INT <= value <= _JCS_INT else float(text)


def loads_leaf(data: bytes | str) -> Any:
    """Parse leaf bytes as JCS means them: an integer beyond 2**53 - 1 is the double it writes
    (JCS writes 1e16 as 10000000000000000), so ``jcs(loads_leaf(b)) == b`` for a v2 leaf."""
    return json.loads(data, parse_int=_jcs_number)


def canonical_leaf(data: bytes) -> dict[str, Any] | None:
    """The record a v2 leaf means when ``data`` is exactly its JCS encoding, else None: the
    answer of ``jcs(loads_leaf(data)) == data`` (tests/unit/test_audit_canonical.py holds the
    two together), at a third of its cost for what the broker writes. orjson reads it; when
    only JCS-safe values came out (``_jcs_fast``), json.loads would have read the same values
    and ``jcs`` would write them with orjson, so orjson's bytes decide. Anything else — a
    float, a big integer, a non-ASCII key, bytes orjson refuses — takes the definition's path.
    Nesting deeper than the interpreter's recursion limit is None however deep the caller's
    stack (a worker process and this one give the same answer).
    """
    try:
        record = orjson.loads(data)
        if type(record) is dict and (_jcs_values(record) if data.isascii() else _jcs_fast(record)):
            return record if orjson.dumps(record, option=orjson.OPT_SORT_KEYS) == data else None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError):
        pass  # the definition's path says what these are
    try:
        record = loads_leaf(data)
        return record if isinstance(record, dict) and jcs(record) == data else None
    except (ValueError, RecursionError):  # not JSON, a value JCS cannot carry, nested too deep
        return None


def leaf_version(record: dict[str, Any]) -> int:
    """The format of a parsed leaf: its ``v`` (2) when it has one, 1 otherwise."""
    version = record.get("v", 1)
    return version if type(version) is int else 0


# -- v1: json.dumps's bytes, fixed key order ----------------------------------------------------
# orjson writes what json.dumps(separators=(",", ":"), ensure_ascii=False) writes for str, exact
# int and bool, None, and list, tuple and dict (str keys) of those; it writes floats differently
# ("1e16", NaN as null) and datetimes, dataclasses and subclasses where json refuses. So only a
# record made of the listed types goes to orjson (which still refuses ints beyond 64 bits and lone
# surrogates); anything else is json's to write or refuse: the bytes of the log never depend on
# which encoder wrote them (tests/unit/test_audit_canonical.py).
_PLAIN = frozenset((str, int, bool, type(None)))


def _dumps(record: dict[str, Any]) -> bytes:
    if _orjson_safe(record):
        try:
            return orjson.dumps(record)
        except orjson.JSONEncodeError:
            pass  # an int beyond 64 bits, a lone surrogate: json decides (and may refuse)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def _orjson_safe(value: Any) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        return all(type(k) is str and _orjson_safe(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_orjson_safe(v) for v in value)
    return False


def recanonical(record: dict[str, Any]) -> bytes:
    """The leaf bytes of an event parsed from the API or an export, in its own format (v2:
    JCS over its fields and ``v``; v1: the fixed key order), for clients that recompute."""
    if leaf_version(record) == LEAF_FORMAT:
        return jcs({k: record[k] for k in (*FIELDS, "v")})
    return _dumps({k: record[k] for k in FIELDS})
