"""Offline verification of an audit export: every event in place, chained, and under signed roots.

An export is a header line (origin, key name, public key, signed checkpoints) followed by one
event per line, each line exactly its leaf bytes in its own leaf format (``broker/audit/events.py``:
v1, the fixed key order of logs written before RFC 8785, or v2, JCS with ``"v":2``, which must
re-encode to itself); a log is a v1 prefix and then v2 events, and both verify the same way.
Verification streams the events once and stops at the first problem, naming the event:
- a sequence number out of place: an event deleted, inserted or reordered;
- a ``prev`` that is not the leaf hash of the event before: the event before was altered;
- a Merkle root that differs from a signed checkpoint: an event up to that size was altered
  (and, if every chain link held, the last one, or the chain itself was rewritten);
- fewer events than the largest checkpoint: the tail was truncated.
Each checkpoint's signature is checked; two checkpoints are consistent when both roots are
prefixes of the same verified event sequence, which is what the single pass establishes.
Parsing and hashing the lines is ``prepare``'s part (``prepare_here`` in this process;
``broker.service.audit_workers`` spreads it over worker processes for a long export,
``prepare_chunk`` being a worker's part); the pass itself stays here, so the verdict and the
event it names do not depend on it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from broker.audit.checkpoint import Checkpoint
from broker.audit.events import GENESIS, LEAF_FORMAT, canonical_leaf, leaf_version
from broker.audit.merkle import CompactRange, leaf_hash
from broker.crypto.note import open_note_any

FORMAT = "liaison-audit-v2"  # the export's header; v2 exports may hold leaves of both formats
FORMATS = ("liaison-audit-v1", FORMAT)  # v1: exports written before v2 leaves (v1 lines only)
_SEQ = b'{"seq":'
_PREV = b'"prev":"'
_HIDDEN_KEYS = {"seq", "hidden", "leaf"}
_LEAF_HEX = re.compile(r"[0-9a-f]{64}")
_NOT_CANONICAL = 0  # the facts of a v2 line that is not its own canonical encoding


def hidden_line(seq: int, leaf_hex: str) -> bytes:
    """The export line of an event the reader may not see: its place and leaf hash only."""
    return json.dumps(
        {"seq": seq, "hidden": True, "leaf": leaf_hex}, separators=(",", ":")
    ).encode()


def _hidden_leaf(line: bytes) -> tuple[int, bytes] | None:
    """(seq, leaf hash) of a hidden line; None for anything else (an event, or garbage)."""
    if len(line) > 200 or b'"hidden":true' not in line:  # the length first: events are longer
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or set(record) != _HIDDEN_KEYS or record["hidden"] is not True:
        return None
    seq, leaf = record["seq"], record["leaf"]
    if not isinstance(seq, int) or not isinstance(leaf, str) or not _LEAF_HEX.fullmatch(leaf):
        return None
    return seq, bytes.fromhex(leaf)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    checkpoints: int
    message: str
    bad_seq: int | None = None
    hidden: int = 0  # events held as leaf hashes only (outside the reader's jurisdiction)


class _Refused(Exception):
    """Ends a verification early with its (failed) result."""

    def __init__(self, result: VerifyResult) -> None:
        super().__init__(result.message)
        self.result = result


def verify_export(
    header: dict[str, Any],
    lines: Iterable[bytes],
    *,
    trusted_key: bytes | None = None,
    trusted_keys: Sequence[bytes] = (),
    prepare: Prepare | None = None,
) -> VerifyResult:
    """Check an export; ``trusted_key``/``trusted_keys`` pin the log's checkpoint keys (else the
    header's are used). Each checkpoint must carry a valid signature by one of them: a log whose
    key was rotated is checked with its old and new keys. ``prepare`` parses and hashes the
    lines (None: ``prepare_here``; on every core: ``broker.service.audit_workers``); the verdict
    is the same."""
    if header.get("format") not in FORMATS:
        return VerifyResult(False, 0, 0, f"not a {' or '.join(FORMATS)} export")
    publics = [*trusted_keys, *([trusted_key] if trusted_key else [])] or [
        base64.b64decode(k) for k in header.get("public_keys") or [header["public_key"]]
    ]
    try:
        expected = _signed_roots(header, publics)
        size, seen, hidden = _walk((prepare or prepare_here)(lines), expected)
    except _Refused as e:
        return e.result
    return _conclusion(expected, size, seen, hidden)


def _signed_roots(header: dict[str, Any], publics: Sequence[bytes]) -> dict[int, bytes]:
    """Tree size -> root of every checkpoint in the header, each signature checked."""
    origin = header["origin"]
    # The log's names over time (``audit.origin`` changed), the current one last; each checkpoint
    # is signed under its own origin as key name, by the same (pinned) key.
    origins = header.get("origins") or [origin]
    expected: dict[int, bytes] = {}
    for note in header.get("checkpoints", []):
        named = note.partition("\n")[0]
        try:
            checkpoint = Checkpoint.parse(open_note_any(note, named, tuple(publics)))
        except ValueError as e:
            raise _Refused(VerifyResult(False, 0, 0, f"a checkpoint does not verify: {e}")) from e
        if checkpoint.origin not in origins:
            message = f"a checkpoint is for another log ({checkpoint.origin!r})"
            raise _Refused(VerifyResult(False, 0, 0, message))
        if expected.get(checkpoint.size, checkpoint.root) != checkpoint.root:
            message = f"two checkpoints at size {checkpoint.size} disagree: the log forked"
            raise _Refused(VerifyResult(False, 0, 0, message))
        expected[checkpoint.size] = checkpoint.root
    return expected


Prepared = tuple[bytes, bytes, Any]  # (line, its leaf hash, the facts of its v2 record)
Chunk = tuple[bytes, int, int, "str | None", list[Any]]  # what prepare_chunk gives back
Prepare = Callable[[Iterable[bytes]], Iterable["Prepared | Clean"]]


@dataclass(frozen=True, slots=True)
class Clean:
    """Consecutive lines a worker found in place and chained one to the next — v2 events,
    canonical, and hidden placeholders: their leaf hashes (32 bytes each; a hidden line's is its
    placeholder's), how many were hidden, and the first one's ``prev`` (None for a hidden line),
    which the walk checks against the line before them."""

    leaves: bytes
    hidden: int
    first_prev: str | None


def prepare_here(lines: Iterable[bytes]) -> Iterator[Prepared]:
    """Each line, without its newline, with its leaf hash and facts, in order, in this process
    (``verify_export``'s default; ``broker.service.audit_workers`` spreads this on every core)."""
    for raw in lines:
        line = raw.rstrip(b"\n")
        yield line, leaf_hash(line), _facts(line)


def chunk_items(lines: list[bytes], prepared: Chunk) -> Iterator[Prepared | Clean]:
    """What the walk takes of a chunk ``prepare_chunk`` prepared: its clean run, then line by
    line from the first line that is not clean (a v1 line, a problem) for the walk to judge."""
    leaves, clean, hidden, first_prev, rest = prepared
    if clean:
        yield Clean(leaves[: 32 * clean], hidden, first_prev)
    for k, facts in enumerate(rest, clean):
        yield lines[k], leaves[32 * k : 32 * k + 32], facts


def prepare_chunk(lines: list[bytes], start: int) -> Chunk:
    """Every line's leaf hash (joined; a worker process's part of the work); how many lines from the first are clean —
    in their place (the first is event ``start``) and chained each to the one before, v2
    events of this format in canonical form, or hidden placeholders — how many of those are
    hidden, and the first one's ``prev``; then the facts of every line after them."""
    leaves: list[bytes] = []
    clean = hidden = 0
    first_prev: str | None = None
    for k, line in enumerate(lines):
        placeholder = _hidden_leaf(line)
        if placeholder is not None:
            if placeholder[0] != start + k:
                break
            leaves.append(placeholder[1])
            hidden += 1
        else:
            facts = _facts(line)
            if facts is None or facts == _NOT_CANONICAL:
                break
            version, _, seq, prev = facts
            if version != LEAF_FORMAT or type(seq) is not int or seq != start + k:
                break
            if not isinstance(prev, str) or (k > 0 and prev != leaves[k - 1].hex()):
                break
            first_prev = first_prev if k else prev
            leaves.append(leaf_hash(line))
        clean += 1
    rest = lines[clean:]
    leaves += [leaf_hash(line) for line in rest]
    return b"".join(leaves), clean, hidden, first_prev, [_facts(line) for line in rest]


def _walk(lines: Iterable[Prepared | Clean], expected: dict[int, bytes]) -> tuple[int, int, int]:
    """Chain and tree over every line; (events, checkpoints matched, hidden placeholders)."""
    tree = CompactRange()
    previous = GENESIS.encode()
    seen_checkpoints = 0
    hidden = 0
    for item in lines:
        position = tree.size + 1
        if isinstance(item, Clean):  # judged in a worker but for its first link, checked here
            if item.first_prev is not None and item.first_prev.encode() != previous:
                at, message = _broken_link(position)
                raise _Refused(VerifyResult(False, position - 1, seen_checkpoints, message, at))
            for k in range(0, len(item.leaves), 32):
                tree.append(item.leaves[k : k + 32])
                seen_checkpoints += _at_checkpoint(tree, expected, seen_checkpoints)
            previous = item.leaves[-32:].hex().encode()
            hidden += item.hidden
            continue
        line, hashed, facts = item
        placeholder = _hidden_leaf(line)
        if placeholder is not None and placeholder[0] != position:
            at = min(placeholder[0], position)
            message = f"event {at}: expected event {position} here, found event {placeholder[0]}"
            raise _Refused(VerifyResult(False, position - 1, seen_checkpoints, message, at))
        problem = None if placeholder is not None else _check_line(line, facts, position, previous)
        if problem is not None:
            raise _Refused(
                VerifyResult(False, position - 1, seen_checkpoints, problem[1], problem[0])
            )
        leaf = placeholder[1] if placeholder is not None else hashed
        hidden += placeholder is not None
        tree.append(leaf)
        previous = leaf.hex().encode()
        seen_checkpoints += _at_checkpoint(tree, expected, seen_checkpoints)
    return tree.size, seen_checkpoints, hidden


def _at_checkpoint(tree: CompactRange, expected: dict[int, bytes], seen: int) -> int:
    """1 when a checkpoint was signed at the tree's size and its root is the tree's, 0 when none
    was; a root that differs ends the verification."""
    root = expected.get(tree.size)
    if root is None:
        return 0
    if tree.root() != root:
        message = (
            f"event {tree.size}: the log up to here does not match the checkpoint signed "
            f"at size {tree.size} (this event, or the chain before it, was altered)"
        )
        raise _Refused(VerifyResult(False, tree.size, seen, message, tree.size))
    return 1


def _conclusion(expected: dict[int, bytes], size: int, seen: int, hidden: int) -> VerifyResult:
    """The verdict once every line checked out: anchored, not truncated, what is unsigned."""
    if expected and max(expected) > size:
        missing = max(expected)
        return VerifyResult(
            False,
            size,
            seen,
            f"event {size + 1}: missing; a checkpoint was signed at size {missing} but the log "
            f"ends at {size} (truncated)",
            size + 1,
        )
    if not expected:
        return VerifyResult(False, size, 0, "no signed checkpoint: nothing anchors these events")
    tail = size - max(expected)
    note = (
        f"; {tail} event(s) after the last checkpoint are chained but not yet signed"
        if tail
        else ""
    )
    shown = f" ({hidden} outside your view, checked by leaf hash only)" if hidden else ""
    return VerifyResult(
        True,
        size,
        seen,
        f"verified {size} events{shown} under {seen} signed checkpoint(s){note}",
        hidden=hidden,
    )


def _facts(line: bytes) -> Any:
    """What the walk needs of a v2 line's record — (format, its "v" as written, seq, prev) — or
    ``_NOT_CANONICAL``; None for a v1 line, which the walk reads by its bytes."""
    if line.startswith(_SEQ):
        return None
    record = canonical_leaf(line)
    if record is None:
        return _NOT_CANONICAL
    return leaf_version(record), record.get("v"), record.get("seq"), record.get("prev")


def _check_line(line: bytes, facts: Any, position: int, previous: bytes) -> tuple[int, str] | None:
    if facts is not None:
        return _check_v2(facts, position, previous)
    try:
        seq = int(line[len(_SEQ) : line.index(b",", len(_SEQ))])
        at = line.index(_PREV) + len(_PREV)
    except ValueError:
        return position, f"event {position}: not a canonical audit event"
    if seq != position:
        return (
            min(seq, position),
            f"event {min(seq, position)}: expected event {position} here, found event {seq} "
            "(events deleted, inserted or reordered)",
        )
    if line[at : at + 64] != previous:
        return _broken_link(position)
    return None


def _check_v2(facts: Any, position: int, previous: bytes) -> tuple[int, str] | None:
    """A JCS leaf: parsed, it must re-encode to exactly its bytes (so every language's parser
    reads the one meaning that was hashed; ``_facts``), then carry its place and chain link."""
    not_canonical = position, f"event {position}: not a canonical audit event"
    if facts == _NOT_CANONICAL:
        return not_canonical
    version, written, seq, prev = facts
    if version != LEAF_FORMAT:
        return (
            position,
            f"event {position}: leaf format {written!r} is not one this verifier knows",
        )
    if type(seq) is not int or not isinstance(prev, str):
        return not_canonical
    if seq != position:
        return (
            min(seq, position),
            f"event {min(seq, position)}: expected event {position} here, found event {seq} "
            "(events deleted, inserted or reordered)",
        )
    if prev.encode() != previous:
        return _broken_link(position)
    return None


def _broken_link(position: int) -> tuple[int, str]:
    """Event ``position`` does not chain to the leaf hash of the one before it."""
    return position - 1, (
        f"event {position - 1}: altered (event {position} chains to a different hash)"
        if position > 1
        else "event 1: does not start the log"
    )


def read_export(lines: Iterable[bytes]) -> tuple[dict[str, Any], Iterable[bytes]]:
    """Split an export into its header and its event lines."""
    iterator = iter(lines)
    try:
        header = json.loads(next(iterator))
    except (StopIteration, ValueError) as e:
        raise ValueError("not an audit export: no header line") from e
    return header, iterator
