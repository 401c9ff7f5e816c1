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
prefixes of the same verified event sequence, which is what the single pass establishes. A long
export (``WORKERS_FROM`` events or more) has its lines parsed, hashed and checked for their own
place and link in worker processes, a chunk at a time; the pass itself — every chunk's first
link, the tree, the checkpoints, and every line a worker did not find clean — stays here, so
the verdict and the event it names are those of one process.

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
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import chain, islice
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
# From this many events on, the lines are parsed and hashed in worker processes, in chunks; the
# walk over them (chain, places, tree, checkpoints) stays one pass here, in order, with the same
# verdict and message as one process gives (tests/unit/test_audit_verify_workers.py).
WORKERS_FROM = 50_000
_CHUNK = 8_192
_NOT_CANONICAL = 0  # the facts of a v2 line that is not its own canonical encoding


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
    workers_from: int = WORKERS_FROM,
) -> VerifyResult:
    """Check an export; ``trusted_key``/``trusted_keys`` pin the log's checkpoint keys (else the
    header's are used). Each checkpoint must carry a valid signature by one of them: a log whose
    key was rotated is checked with its old and new keys. An export of ``workers_from`` events
    or more is parsed and hashed on every core (the verdict is the same)."""
    if header.get("format") not in FORMATS:
        return VerifyResult(False, 0, 0, f"not a {' or '.join(FORMATS)} export")
    publics = [*trusted_keys, *([trusted_key] if trusted_key else [])] or [
        base64.b64decode(k) for k in header.get("public_keys") or [header["public_key"]]
    ]
    try:
        expected = _signed_roots(header, publics)
        size, seen, hidden = _walk(_prepared(lines, workers_from), expected)
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


@dataclass(frozen=True, slots=True)
class _Clean:
    """Consecutive v2 lines a worker found canonical, in place and chained one to the next:
    their leaf hashes (32 bytes each), and the first one's ``prev``, which the walk checks
    against the line before them."""

    leaves: bytes
    first_prev: str


def _prepared(lines: Iterable[bytes], workers_from: int) -> Iterator[Prepared | _Clean]:
    """Each line, without its newline, with what parsing and hashing it gives, in order: here
    for a short export, in worker processes (one per core) for a long one."""
    iterator = iter(lines)
    head = list(islice(iterator, workers_from))
    cores = os.cpu_count() or 1
    if len(head) < workers_from or cores < 2:
        for raw in chain(head, iterator):
            line = raw.rstrip(b"\n")
            yield line, leaf_hash(line), _facts(line)
        return
    yield from _prepared_by_workers(chain(head, iterator), cores)


def _prepared_by_workers(lines: Iterator[bytes], workers: int) -> Iterator[Prepared | _Clean]:
    """``_prepared`` with chunks of lines sent to worker processes, a few chunks ahead of the
    walk (memory stays bounded); stopping early (a problem found) cancels what is queued. A
    chunk comes back as its clean run (``_Clean``) and, from the first line that is not clean
    (a v1 or hidden line, or a problem), line by line for the walk to judge. If the workers
    cannot run (they import the caller's ``__main__``, which may not be a file), what they did
    not do is done here, in order."""
    # spawn, not fork: the caller may hold threads (a CLI's event loop, a test's pool).
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    pending: deque[tuple[list[bytes], Future[tuple[bytes, int, str | None]] | None]] = deque()
    start, broken = 1, False
    try:
        while not broken:
            chunk = [raw.rstrip(b"\n") for raw in islice(lines, _CHUNK)]
            if chunk:
                try:
                    pending.append((chunk, pool.submit(_prepare_chunk, chunk, start)))
                except BrokenProcessPool:
                    pending.append((chunk, None))
                    break
                start += len(chunk)
            elif not pending:
                return
            while pending and (not chunk or len(pending) > 2 * workers):
                done, future = pending[0]
                try:
                    prepared = future.result() if future is not None else None
                except BrokenProcessPool:
                    prepared = None
                if prepared is None:
                    broken = True
                    break
                pending.popleft()
                leaves, clean, first_prev = prepared
                if clean:
                    yield _Clean(leaves[: 32 * clean], str(first_prev))
                for k in range(clean, len(done)):
                    yield done[k], leaves[32 * k : 32 * k + 32], _facts(done[k])
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for done, _ in pending:
        for line in done:
            yield line, leaf_hash(line), _facts(line)
    for raw in lines:
        line = raw.rstrip(b"\n")
        yield line, leaf_hash(line), _facts(line)


def _prepare_chunk(lines: list[bytes], start: int) -> tuple[bytes, int, str | None]:
    """In a worker: every line's leaf hash (joined), how many lines from the first are clean —
    v2, canonical, of this format, ``seq`` their place (the first is event ``start``), each
    chained to the one before — and the first one's ``prev``."""
    leaves = [leaf_hash(line) for line in lines]
    clean, first_prev = 0, None
    for k, line in enumerate(lines):
        facts = _facts(line)
        if facts is None or facts == _NOT_CANONICAL:
            break
        version, _, seq, prev = facts
        if version != LEAF_FORMAT or type(seq) is not int or seq != start + k:
            break
        if not isinstance(prev, str) or (k > 0 and prev != leaves[k - 1].hex()):
            break
        first_prev = first_prev if k else prev
        clean += 1
    return b"".join(leaves), clean, first_prev


def _walk(lines: Iterable[Prepared | _Clean], expected: dict[int, bytes]) -> tuple[int, int, int]:
    """Chain and tree over every line; (events, checkpoints matched, hidden placeholders)."""
    tree = CompactRange()
    previous = GENESIS.encode()
    seen_checkpoints = 0
    hidden = 0
    for item in lines:
        position = tree.size + 1
        if isinstance(item, _Clean):  # judged in a worker but for its first link, checked here
            if item.first_prev.encode() != previous:
                at, message = _broken_link(position)
                raise _Refused(VerifyResult(False, position - 1, seen_checkpoints, message, at))
            for k in range(0, len(item.leaves), 32):
                tree.append(item.leaves[k : k + 32])
                seen_checkpoints += _at_checkpoint(tree, expected, seen_checkpoints)
            previous = item.leaves[-32:].hex().encode()
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
