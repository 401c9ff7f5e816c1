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

An auditor's export holds the events outside their jurisdiction as hidden lines,
``{"seq":N,"hidden":true,"leaf":"<hex>"}``: the leaf hash in its place, no content. The chain
link of the next event and the Merkle root are checked over those hashes exactly as over the
events, so every shown event is proven unaltered and in its place under the signed root (a
wrong hidden hash breaks the root). What a hidden line cannot prove is that the broker hid only
what policy hides; an export of the whole log (the operator's, or a supervisory auditor's) can.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
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


def hidden_line(seq: int, leaf_hex: str) -> bytes:
    """The export line of an event the reader may not see: its place and leaf hash only."""
    return json.dumps(
        {"seq": seq, "hidden": True, "leaf": leaf_hex}, separators=(",", ":")
    ).encode()


def _hidden_leaf(line: bytes) -> tuple[int, bytes] | None:
    """(seq, leaf hash) of a hidden line; None for anything else (an event, or garbage)."""
    if b'"hidden":true' not in line or len(line) > 200:
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
) -> VerifyResult:
    """Check an export; ``trusted_key``/``trusted_keys`` pin the log's checkpoint keys (else the
    header's are used). Each checkpoint must carry a valid signature by one of them: a log whose
    key was rotated is checked with its old and new keys."""
    if header.get("format") not in FORMATS:
        return VerifyResult(False, 0, 0, f"not a {' or '.join(FORMATS)} export")
    publics = [*trusted_keys, *([trusted_key] if trusted_key else [])] or [
        base64.b64decode(k) for k in header.get("public_keys") or [header["public_key"]]
    ]
    try:
        expected = _signed_roots(header, publics)
        size, seen, hidden = _walk(lines, expected)
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


def _walk(lines: Iterable[bytes], expected: dict[int, bytes]) -> tuple[int, int, int]:
    """Chain and tree over every line; (events, checkpoints matched, hidden placeholders)."""
    tree = CompactRange()
    previous = GENESIS.encode()
    seen_checkpoints = 0
    hidden = 0
    for position, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\n")
        placeholder = _hidden_leaf(line)
        if placeholder is not None and placeholder[0] != position:
            at = min(placeholder[0], position)
            message = f"event {at}: expected event {position} here, found event {placeholder[0]}"
            raise _Refused(VerifyResult(False, position - 1, seen_checkpoints, message, at))
        problem = None if placeholder is not None else _check_line(line, position, previous)
        if problem is not None:
            raise _Refused(
                VerifyResult(False, position - 1, seen_checkpoints, problem[1], problem[0])
            )
        leaf = placeholder[1] if placeholder is not None else leaf_hash(line)
        hidden += placeholder is not None
        tree.append(leaf)
        previous = leaf.hex().encode()
        root = expected.get(tree.size)
        if root is not None:
            if tree.root() != root:
                message = (
                    f"event {tree.size}: the log up to here does not match the checkpoint signed "
                    f"at size {tree.size} (this event, or the chain before it, was altered)"
                )
                raise _Refused(VerifyResult(False, tree.size, seen_checkpoints, message, tree.size))
            seen_checkpoints += 1
    return tree.size, seen_checkpoints, hidden


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


def _check_line(line: bytes, position: int, previous: bytes) -> tuple[int, str] | None:
    if not line.startswith(_SEQ):
        return _check_v2(line, position, previous)
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
        return position - 1, (
            f"event {position - 1}: altered (event {position} chains to a different hash)"
            if position > 1
            else "event 1: does not start the log"
        )
    return None


def _check_v2(line: bytes, position: int, previous: bytes) -> tuple[int, str] | None:
    """A JCS leaf: parsed, it must re-encode to exactly its bytes (so every language's parser
    reads the one meaning that was hashed), then carry its place and chain link."""
    not_canonical = position, f"event {position}: not a canonical audit event"
    record = canonical_leaf(line)
    if record is None:
        return not_canonical
    version = leaf_version(record)
    if version != LEAF_FORMAT:
        return (
            position,
            f"event {position}: leaf format {record.get('v')!r} is not one this verifier knows",
        )
    seq, prev = record.get("seq"), record.get("prev")
    if type(seq) is not int or not isinstance(prev, str):
        return not_canonical
    if seq != position:
        return (
            min(seq, position),
            f"event {min(seq, position)}: expected event {position} here, found event {seq} "
            "(events deleted, inserted or reordered)",
        )
    if prev.encode() != previous:
        return position - 1, (
            f"event {position - 1}: altered (event {position} chains to a different hash)"
            if position > 1
            else "event 1: does not start the log"
        )
    return None


def read_export(lines: Iterable[bytes]) -> tuple[dict[str, Any], Iterable[bytes]]:
    """Split an export into its header and its event lines."""
    iterator = iter(lines)
    try:
        header = json.loads(next(iterator))
    except (StopIteration, ValueError) as e:
        raise ValueError("not an audit export: no header line") from e
    return header, iterator
