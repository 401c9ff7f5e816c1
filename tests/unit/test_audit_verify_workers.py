"""``audit verify`` on every core gives the verdict one process gives, word for word.

A long export is parsed and hashed in worker processes, in chunks, and walked here
(``broker/service/audit_workers.py``, ``broker/audit/verify.py``). Each test builds a real signed export, edits it as a compromised
host or a careless copy would, and verifies it twice — in this process alone and with workers
(the threshold at one event, chunks of 64 lines so that every edit lands at a chunk's start, in
its middle and at its end) — and the two results must be equal: the same verdict, the same
event named, the same message.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import verify
from broker.audit.checkpoint import Checkpoint
from broker.audit.events import GENESIS, AuditEvent, canonical, canonical_v1
from broker.audit.merkle import CompactRange, leaf_hash
from broker.audit.verify import hidden_line, verify_export
from broker.crypto.note import sign_note
from broker.service.audit_workers import WORKERS_FROM, on_every_core
from tests.support import run_cli

ORIGIN = "liaison.invalid/audit/workers"
CHUNK = 64
EVENTS = 5 * CHUNK + 17


def _event(n: int) -> AuditEvent:
    return AuditEvent(
        at=datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
        actor="agency:mk-mvr",
        action="notice.routed",
        object=f"notice:{n:032x}",
        channel="returnee-repatriation",
        policies=("channel/returnee-repatriation/receive/x",),
        details={"role": "mk-kumanovo.pcve-focal-point", "n": n},
        request="r",
    )


def export(
    count: int = EVENTS, *, v1_prefix: int = 0, checkpoints: tuple[int, ...] = ()
) -> tuple[dict[str, Any], list[bytes]]:
    """A signed export of ``count`` chained events (the first ``v1_prefix`` in the v1 format),
    with checkpoints at ``checkpoints`` and at its end."""
    key = Ed25519PrivateKey.generate()
    lines, prev, tree, notes = [], GENESIS, CompactRange(), []
    for seq in range(1, count + 1):
        write = canonical_v1 if seq <= v1_prefix else canonical
        body = write(_event(seq), seq, prev)
        leaf = leaf_hash(body)
        tree.append(leaf)
        prev = leaf.hex()
        lines.append(body + b"\n")
        if seq in (*checkpoints, count):
            notes.append(sign_note(Checkpoint(ORIGIN, seq, tree.root()).text(), ORIGIN, key))
    public = key.public_key().public_bytes_raw()
    header = {
        "format": verify.FORMAT,
        "origin": ORIGIN,
        "key_name": ORIGIN,
        "public_key": base64.b64encode(public).decode(),
        "checkpoints": notes,
    }
    return header, lines


@pytest.fixture
def both() -> Callable[..., verify.VerifyResult]:
    """Verify alone and with workers; assert the results are equal; return that result."""
    workers = on_every_core(workers_from=1, chunk=CHUNK)

    def run(header: dict[str, Any], lines: list[bytes]) -> verify.VerifyResult:
        alone = verify_export(header, lines)
        assert verify_export(header, lines, prepare=workers) == alone
        return alone

    return run


def _altered(line: bytes) -> bytes:
    """The same event with another detail, still canonical: its leaf hash changes."""
    return line.replace(b'"n":', b'"n":1', 1)


AT = [1, 2, CHUNK, CHUNK + 1, 2 * CHUNK + 30, EVENTS - 1, EVENTS]


def test_an_intact_log_verifies_the_same(both: Callable[..., verify.VerifyResult]) -> None:
    result = both(*export(checkpoints=(1, CHUNK, CHUNK + 1, 200)))
    assert result.ok and result.events == EVENTS and result.checkpoints == 5


@pytest.mark.parametrize("at", AT)
def test_an_altered_event_is_named_the_same(
    both: Callable[..., verify.VerifyResult], at: int
) -> None:
    header, lines = export(checkpoints=(CHUNK, 200))
    lines[at - 1] = _altered(lines[at - 1])
    result = both(header, lines)
    assert not result.ok and result.bad_seq == at


@pytest.mark.parametrize("at", AT[:-1])
def test_a_deleted_or_swapped_event_is_named_the_same(
    both: Callable[..., verify.VerifyResult], at: int
) -> None:
    header, lines = export()
    assert not both(header, lines[: at - 1] + lines[at:]).ok
    swapped = [*lines]
    swapped[at - 1], swapped[at] = swapped[at], swapped[at - 1]
    assert not both(header, swapped).ok


@pytest.mark.parametrize("at", AT)
def test_a_line_that_is_not_canonical_is_named_the_same(
    both: Callable[..., verify.VerifyResult], at: int
) -> None:
    header, lines = export()
    lines[at - 1] = lines[at - 1].replace(b'{"', b'{ "', 1)
    result = both(header, lines)
    assert not result.ok and "not a canonical audit event" in result.message


def test_hidden_lines_and_a_wrong_hidden_hash_are_judged_the_same(
    both: Callable[..., verify.VerifyResult],
) -> None:
    header, lines = export(checkpoints=(CHUNK,))
    shown = [*lines]
    for at in (3, CHUNK, CHUNK + 1, 150):  # an auditor's view: these outside it
        shown[at - 1] = hidden_line(at, leaf_hash(lines[at - 1].rstrip(b"\n")).hex()) + b"\n"
    result = both(header, shown)
    assert result.ok and result.hidden == 4
    misplaced = [*shown]
    misplaced[CHUNK] = hidden_line(CHUNK + 2, leaf_hash(lines[CHUNK].rstrip(b"\n")).hex()) + b"\n"
    assert "found event" in both(header, misplaced).message
    shown[149] = hidden_line(150, "00" * 32) + b"\n"
    assert not both(header, shown).ok


@pytest.mark.parametrize("depth", [50, 5000])
def test_a_deeply_nested_line_is_judged_the_same_whatever_the_stack(
    both: Callable[..., verify.VerifyResult], depth: int
) -> None:
    header, lines = export()
    nested = b"[" * depth + b"1" + b"]" * depth
    lines[CHUNK + 3] = lines[CHUNK + 3].replace(b'"n":', b'"n":' + nested + b',"m":', 1)
    assert not both(header, lines).ok  # altered (depth 50) or not canonical (beyond the limit)


def test_a_v1_prefix_then_v2_and_a_tampered_v1_event_are_judged_the_same(
    both: Callable[..., verify.VerifyResult],
) -> None:
    header, lines = export(v1_prefix=CHUNK + 10, checkpoints=(CHUNK,))
    assert both(header, lines).ok
    lines[20] = lines[20].replace(b'"n":', b'"n":1', 1)
    assert not both(header, lines).ok


def test_a_truncated_log_and_a_foreign_checkpoint_are_judged_the_same(
    both: Callable[..., verify.VerifyResult],
) -> None:
    header, lines = export(checkpoints=(CHUNK,))
    assert "truncated" in both(header, lines[:-5]).message
    other, _ = export(count=CHUNK, checkpoints=())
    forged = {**header, "checkpoints": header["checkpoints"][:1] + other["checkpoints"]}
    assert not both({**forged, "public_key": other["public_key"]}, lines).ok


def test_workers_that_cannot_start_leave_the_verdict_to_this_process() -> None:
    """A caller whose ``__main__`` is not a file (here: a script on stdin) cannot give worker
    processes its main module: they fail to start and this process does their part."""
    script = textwrap.dedent(
        """
        from broker.audit.verify import verify_export
        from broker.service.audit_workers import on_every_core
        from tests.unit.test_audit_verify_workers import export
        header, lines = export()
        lines[100] = lines[100].replace(b'"n":', b'"n":1', 1)
        alone = verify_export(header, lines)
        workers = on_every_core(workers_from=1, chunk=64)
        print(verify_export(header, lines, prepare=workers) == alone, alone.bad_seq)
        """
    )
    done = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["True", "101"], done.stderr[-2000:]


def test_liaison_audit_verify_of_a_long_export_names_the_altered_event_with_its_workers(
    tmp_path: Path,
) -> None:
    header, lines = export(WORKERS_FROM + 3 * CHUNK)
    lines[WORKERS_FROM + 10] = _altered(lines[WORKERS_FROM + 10])
    path = tmp_path / "export.jsonl"
    path.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(lines))
    done = run_cli("audit", "verify", path, timeout=180)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert f"event {WORKERS_FROM + 11}: altered" in said, said[-2000:]
    assert "Traceback" not in said  # the workers started (none fell back to this process)
