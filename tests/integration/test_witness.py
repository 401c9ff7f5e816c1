"""`liaison witness` against a real `liaison serve` on loopback, with a real SQLite store.

An auditor runs their own witness: it cosigns the broker's checkpoints while the log grows;
then the broker's host (the THREATS.md "broker's own host" row: it holds the store and the log
key) rewrites an event and the tree head directly in the database, and signs the new history.
The witness refuses to cosign it, says why in one line, exits non-zero and keeps its state.
The cosignature is checked independently: the signed bytes rebuilt from c2sp.org/tlog-cosignature
and verified with PyNaCl.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import struct
from pathlib import Path

from nacl.signing import VerifyKey

from broker.audit.merkle import CompactRange, leaf_hash
from tests.conftest import POLICIES
from tests.support import run_cli, serve_process

MK = "mk-ombudsman-auditor"
NAME = "ombudsperson.mk/witness"


def _log_key(demo_dir: Path, url: str, tmp_path: Path) -> str:
    """The broker's checkpoint key, as the auditor wrote it down at enrolment."""
    out = tmp_path / "enrolment.jsonl"
    done = run_cli("audit", "export", "--data", demo_dir, "--url", url, "--as", MK, "--out", out)
    assert done.returncode == 0, done.stderr
    return str(json.loads(out.read_text().splitlines()[0])["public_key"])


def _rewrite_history(db: Path, seq: int) -> None:
    """What a compromised host does: alter an event, its leaf and the tree head, in place."""
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("select body from audit_event where seq = ?", (seq,)).fetchone()
        forged = body.replace('"actor":"', '"actor":"x', 1)
        assert forged != body
        conn.execute(
            "update audit_event set body = ?, leaf = ? where seq = ?",
            (forged, leaf_hash(forged.encode()), seq),
        )
        tree = CompactRange()
        for (leaf,) in conn.execute("select leaf from audit_event order by seq"):
            tree.append(bytes(leaf))
        conn.execute("update audit_head set frontier = ? where id = 1", (json.dumps(tree.dump()),))


def _independently_verified(note: str, public: bytes) -> int:
    """The witness's cosignature on ``note``, checked without our code: PyNaCl over the bytes."""
    body, _, signatures = note.partition("\n\n")
    key_id = hashlib.sha256(NAME.encode() + b"\n\x04" + public).digest()[:4]
    for line in signatures.splitlines():
        name, _, blob = line.removeprefix("\u2014 ").partition(" ")
        raw = base64.b64decode(blob)
        if name == NAME and raw[:4] == key_id:
            (timestamp,) = struct.unpack(">Q", raw[4:12])
            message = f"cosignature/v1\ntime {timestamp}\n{body}\n".encode()
            VerifyKey(public).verify(message, raw[12:])
            return int(timestamp)
    raise AssertionError("no cosignature of the witness on the note")


def test_a_witness_cosigns_a_growing_log_and_refuses_a_rewritten_one(
    demo_dir: Path, tmp_path: Path
) -> None:
    key = tmp_path / "witness.pem"
    assert run_cli("keygen", "--type", "ed25519", "--out", key).returncode == 0
    vkey = run_cli("witness", "--cosigning-key", key, "--name", NAME, "--vkey").stdout.strip()
    public = base64.b64decode(vkey.split("+", 2)[2])[1:]
    state, out = tmp_path / "witness-state.json", tmp_path / "cosigned.note"
    with serve_process(demo_dir) as (_, url):
        auditor = ["--data", demo_dir, "--url", url, "--as", MK]
        witness = ["witness", "--cosigning-key", key, "--name", NAME, "--state", state]
        witness += ["--out", out, "--once", *auditor]
        log_key = _log_key(demo_dir, url, tmp_path)

        first = run_cli(*witness, "--log-key", log_key)
        assert first.returncode == 0, first.stderr
        assert "taken on trust" in first.stdout
        size_1 = json.loads(state.read_text())["size"]

        sent = run_cli(
            "send", POLICIES / "examples" / "returnee-repatriation.json",
            "--data", demo_dir, "--url", url, "--as", "mk-mvr",
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        second = run_cli(*witness)
        assert second.returncode == 0, second.stderr
        assert f"at size {json.loads(state.read_text())['size']}" in second.stdout
        cosigned = json.loads(state.read_text())
        assert cosigned["size"] > size_1 and "taken on trust" not in second.stdout
        assert _independently_verified(out.read_text(), public) == cosigned["cosigned_at"]

        verified = run_cli(
            "audit", "verify", *auditor, "--checkpoint-key", log_key,
            "--witness-key", vkey, "--cosigned", out,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stderr
        assert f"cosigned by {NAME}" in verified.stdout and "matches this log" in verified.stdout

        _rewrite_history(demo_dir / "liaison.db", seq=3)
        third = run_cli(*witness)
        assert third.returncode == 1
        (line,) = third.stderr.strip().splitlines()
        assert line.startswith("liaison witness: REFUSED to cosign: the log at size ")
        assert f"not an extension of the size {cosigned['size']}" in line
        assert "two histories" in line
        assert json.loads(state.read_text()) == cosigned  # nothing moved
        evidence = state.with_name(state.name + ".evidence.jsonl").read_text().splitlines()
        assert json.loads(evidence[-1])["code"] == "inconsistent"

        caught = run_cli(
            "audit", "verify", *auditor, "--checkpoint-key", log_key,
            "--witness-key", vkey, "--cosigned", state,
        )  # fmt: skip
        assert caught.returncode == 1, caught.stdout


def test_the_cosigned_checkpoint_alone_verifies_and_a_wrong_witness_key_fails(
    demo_dir: Path, tmp_path: Path
) -> None:
    key, other = tmp_path / "witness.pem", tmp_path / "other.pem"
    for path in (key, other):
        assert run_cli("keygen", "--type", "ed25519", "--out", path).returncode == 0
    vkey = run_cli("witness", "--cosigning-key", key, "--name", NAME, "--vkey").stdout.strip()
    wrong = run_cli("witness", "--cosigning-key", other, "--name", NAME, "--vkey").stdout.strip()
    state = tmp_path / "state.json"
    with serve_process(demo_dir) as (_, url):
        log_key = _log_key(demo_dir, url, tmp_path)
        done = run_cli(
            "witness", "--cosigning-key", key, "--name", NAME, "--state", state, "--once",
            "--log-key", log_key, "--data", demo_dir, "--url", url, "--as", MK,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    ok = run_cli("audit", "verify", "--checkpoint-key", log_key, "--witness-key", vkey,
                 "--cosigned", state)  # fmt: skip
    assert ok.returncode == 0 and ok.stdout.startswith("OK: size "), ok.stderr
    bad = run_cli("audit", "verify", "--checkpoint-key", log_key, "--witness-key", wrong,
                  "--cosigned", state)  # fmt: skip
    assert bad.returncode == 1
    assert (
        bad.stderr.strip()
        == f"liaison: cosignature NOT valid: the note carries no cosignature from {NAME}"
    )
    # A first run without a pinned log key refuses, and says where to find it.
    fresh = run_cli("witness", "--cosigning-key", key, "--name", NAME, "--state",
                    tmp_path / "new.json", "--once", "--data", demo_dir, "--url", "http://127.0.0.1:9")  # fmt: skip
    assert fresh.returncode == 1 and fresh.stderr.startswith("liaison: ")
