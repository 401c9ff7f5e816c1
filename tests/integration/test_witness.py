"""`liaison witness` against a real `liaison serve` on loopback, with a real SQLite store.

An auditor runs their own witness: it cosigns the broker's checkpoints while the log grows;
then the broker's host (the THREATS.md "broker's own host" row: it holds the store and the log
key) rewrites an event and the tree head directly in the database, and signs the new history.
The witness refuses to cosign it, says why in one line, exits non-zero and keeps its state.
The cosignature is checked independently: the signed bytes rebuilt from c2sp.org/tlog-cosignature
and verified with PyNaCl.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from nacl.signing import VerifyKey
from sqlalchemy import text

from broker.audit.merkle import CompactRange, leaf_hash
from broker.cli.main import main
from broker.store.engine import create_engine
from tests.conftest import POLICIES
from tests.support import run_cli, serve_process

MK = "mk-ombudsman-auditor"
NAME = "ombudsperson.mk/witness"


def _key(path: Path) -> Path:
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


async def _rewrite_history(database_url: str, seq: int) -> None:
    """What a compromised host does: alter an event, its leaf and the tree head, in place."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            query = text("select body from audit_event where seq = :s")
            body = (await conn.execute(query, {"s": seq})).scalar_one()
            forged = body.replace('"actor":"', '"actor":"x', 1)
            assert forged != body
            await conn.execute(
                text("update audit_event set body = :b, leaf = :l where seq = :s"),
                {"b": forged, "l": leaf_hash(forged.encode()), "s": seq},
            )
            tree = CompactRange()
            for (leaf,) in await conn.execute(text("select leaf from audit_event order by seq")):
                tree.append(bytes(leaf))
            await conn.execute(
                text("update audit_head set frontier = :f where id = 1"),
                {"f": json.dumps(tree.dump())},
            )
    finally:
        await engine.dispose()


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


def _offline(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """A `liaison` command that asks no broker, run in this process (no start-up cost)."""
    capsys.readouterr()
    code = main(list(map(str, args)))
    out, err = capsys.readouterr()
    return code, (out + err).strip()


def _vkey(capsys: pytest.CaptureFixture[str], key: Path) -> str:
    code, said = _offline(capsys, "witness", "--cosigning-key", key, "--name", NAME, "--vkey")
    assert code == 0
    return said


def test_a_witness_cosigns_a_growing_log_and_refuses_a_rewritten_one(
    demo_dir: Path, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"LIAISON_DATABASE_URL": database_url}
    applied = run_cli(
        "directory", "apply", demo_dir / "directory.yaml", "--data", demo_dir, env=env
    )
    assert applied.returncode == 0, applied.stderr
    key = _key(tmp_path / "witness.pem")
    vkey = _vkey(capsys, key)
    public = base64.b64decode(vkey.split("+", 2)[2])[1:]
    state, out = tmp_path / "witness-state.json", tmp_path / "cosigned.note"
    with serve_process(demo_dir, env=env) as (_, url):
        auditor = ["--data", demo_dir, "--url", url, "--as", MK]
        witness = ["witness", "--cosigning-key", key, "--name", NAME, "--state", state]
        witness += ["--out", out, "--once", *auditor]

        unpinned = run_cli(*witness, env=env)  # a first run must pin the log's key
        assert unpinned.returncode == 1 and not state.exists()
        assert "first run: pin the log's key with --log-key" in unpinned.stderr
        log_key = unpinned.stderr.split("it is ", 1)[1].split(";", 1)[0]  # as if told in person

        first = run_cli(*witness, "--log-key", log_key, env=env)
        assert first.returncode == 0, first.stderr
        assert "taken on trust" in first.stdout
        size_1 = json.loads(state.read_text())["size"]

        sent = run_cli(
            "send", POLICIES / "examples" / "returnee-repatriation.json",
            "--data", demo_dir, "--url", url, "--as", "mk-mvr", env=env,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        second = run_cli(*witness, env=env)
        assert second.returncode == 0, second.stderr
        cosigned = json.loads(state.read_text())
        assert f"at size {cosigned['size']}" in second.stdout
        assert cosigned["size"] > size_1 and "taken on trust" not in second.stdout
        assert _independently_verified(out.read_text(), public) == cosigned["cosigned_at"]

        verified = run_cli(
            "audit", "verify", *auditor, "--checkpoint-key", log_key,
            "--witness-key", vkey, "--cosigned", out, env=env,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stderr
        assert f"cosigned by {NAME}" in verified.stdout and "matches this log" in verified.stdout

        asyncio.run(_rewrite_history(database_url, seq=3))
        third = run_cli(*witness, env=env)
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
            "--witness-key", vkey, "--cosigned", state, env=env,
        )  # fmt: skip
        assert caught.returncode == 1, caught.stdout

    # Offline, the cosigned checkpoint alone: the right witness key verifies, another does not.
    code, said = _offline(
        capsys, "audit", "verify", "--checkpoint-key", log_key, "--witness-key", vkey,
        "--cosigned", state,
    )  # fmt: skip
    assert code == 0 and said.startswith(f"OK: size {cosigned['size']} cosigned by {NAME} at ")
    other = _vkey(capsys, _key(tmp_path / "other.pem"))
    code, said = _offline(
        capsys, "audit", "verify", "--checkpoint-key", log_key, "--witness-key", other,
        "--cosigned", state,
    )  # fmt: skip
    assert code == 1
    assert said == f"liaison: cosignature NOT valid: the note carries no cosignature from {NAME}"
