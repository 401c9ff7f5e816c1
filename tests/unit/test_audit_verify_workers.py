"""``audit verify`` on every core gives the verdict one process gives, word for word.

A long export is parsed and hashed in worker processes, in chunks, and walked here
(``broker/audit/verify.py``). Each test builds a real signed export, edits it as a compromised
host or a careless copy would, and verifies it twice — in this process alone and with workers
(the threshold at one event, chunks of 64 lines so that every edit lands at a chunk's start, in
its middle and at its end) — and the two results must be equal: the same verdict, the same
event named, the same message.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import verify
from broker.audit.checkpoint import Checkpoint
from broker.audit.events import GENESIS, AuditEvent, canonical, canonical_v1
from broker.audit.merkle import CompactRange, leaf_hash
from broker.audit.verify import hidden_line, verify_export
from broker.crypto.note import sign_note

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
def both(monkeypatch: pytest.MonkeyPatch) -> Callable[..., verify.VerifyResult]:
    """Verify alone and with workers; assert the results are equal; return that result."""
    monkeypatch.setattr(verify, "_CHUNK", CHUNK)

    def run(header: dict[str, Any], lines: list[bytes]) -> verify.VerifyResult:
        alone = verify_export(header, lines, workers_from=10**9)
        workers = verify_export(header, lines, workers_from=1)
        assert workers == alone
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
    shown[149] = hidden_line(150, "00" * 32) + b"\n"
    assert not both(header, shown).ok


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
        from broker.audit import verify
        from tests.unit.test_audit_verify_workers import export
        verify._CHUNK = 64
        header, lines = export()
        lines[100] = lines[100].replace(b'"n":', b'"n":1', 1)
        alone = verify.verify_export(header, lines, workers_from=10**9)
        print(verify.verify_export(header, lines, workers_from=1) == alone, alone.bad_seq)
        """
    )
    done = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["True", "101"], done.stderr[-2000:]
