"""Two real brokers on loopback witness each other's audit logs (c2sp.org/tlog-witness).

Broker A plays Kosovo, broker B North Macedonia; each peer file names the other's log
(``log_origin``, ``log_key``) and URL. Each broker, after signing a checkpoint, submits it to the
other's ``add-checkpoint`` and keeps the cosignature it gets back on the checkpoint it serves;
an auditor's ``liaison audit verify --peer URL`` checks it (the key asked of the peer).

Then A's host turns attacker (THREATS.md, "the broker's own host": it holds the store and the
log key): it rewrites an event and the tree head in A's database, deletes the checkpoints that
would contradict the new history (so A's log verifies on its own), and A signs the rewritten
log. B's witness refuses it (422), keeps the request as evidence and records the refusal in its
own log; its state of A's log does not move; ``audit verify --peer B`` on A fails: no checkpoint
A serves carries B's cosignature. Anyone may call ``add-checkpoint``: an unknown origin, a bad
signature and a garbled body are refused with nothing written; two concurrent submissions from
the same state never roll the witness back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sqlite3
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.signing import VerifyKey

from broker.audit.checkpoint import Checkpoint
from broker.audit.merkle import CompactRange, consistency_proof, leaf_hash
from broker.audit.tlog_witness import format_request
from broker.config import load_settings
from broker.crypto import purpose_keys
from broker.crypto.note import sign_note
from broker.federation.agreements import witness_name
from broker.federation.origin import root_pin
from broker.service.custody import load_escrow_key
from broker.service.setup import init_data_dir
from tests.support import free_port, output, run_cli, serve_process

ENV = {
    "LIAISON_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "1",
    "LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1",
    "LIAISON_WEBHOOKS_MAX_BACKOFF_SECONDS": "1",
}
FAKE_ORIGIN = "rs.example/liaison/audit"  # a third log, declared at B, signed by the test
FAKE_LOG = Ed25519PrivateKey.generate()
DASH = "\u2014 "


@dataclass
class Broker:
    data: Path
    port: int
    auditor: str
    proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> tuple[str, bytes]:
        """The log's origin and key, as the broker will sign its checkpoints."""
        settings = load_settings(self.data, {})
        keys = purpose_keys.load_for(settings, {}).log_keys()
        return settings.audit.origin or keys.origin, keys.publics[0]

    def broker_key(self) -> bytes:
        return purpose_keys.broker_key(load_settings(self.data, {}), {}).public_raw

    def rows(self, sql: str, *params: Any) -> list[Any]:
        with sqlite3.connect(self.data / "liaison.db", timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def latest_note(self) -> str:
        """The largest checkpoint's note; empty before the broker has signed its first (a
        loaded machine can be polled before then: waiting goes on)."""
        found = self.rows("select note from audit_checkpoint order by size desc limit 1")
        return str(found[0][0]) if found else ""


def peer_file(peer: str, url: str | None, card: dict[str, str]) -> str:
    return "\n".join(
        [
            f"id: {peer}",
            "kind: national",
            f"title: Broker {peer}",
            *([f"url: {url}"] if url else []),
            f"country: {peer}",
            *(f"{k}: {v}" for k, v in card.items()),
            "agreement:",
            f"  id: {peer}-2026-returnees",
            "  valid_from: 2026-01-01T00:00:00Z",
            "  valid_until: 2030-01-01T00:00:00Z",
            "  crossings: []",
            "",
        ]
    )


def card(side: Broker) -> dict[str, str]:
    settings = load_settings(side.data, {})
    origin, log_key = side.log()
    return {
        "broker_key": base64.b64encode(side.broker_key()).decode(),
        "escrow_key": base64.b64encode(load_escrow_key(settings, {}).public_raw).decode(),
        "directory_root": root_pin((side.data / "trust" / "root.json").read_bytes()),
        "log_origin": origin,
        "log_key": base64.b64encode(log_key).decode(),
    }


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Broker]]:
    root = tmp_path_factory.mktemp("witnessing")
    a = Broker(root / "xk", free_port(), "xk-ombudsman-auditor")
    b = Broker(root / "mk", free_port(), "mk-ombudsman-auditor")
    for side in (a, b):
        asyncio.run(init_data_dir(side.data, demo=True, now=datetime.now(UTC), environ={}))
        (side.data / "policies" / "peers").mkdir()
    (a.data / "policies" / "peers" / "mk.yaml").write_text(peer_file("mk", b.url, card(b)))
    (b.data / "policies" / "peers" / "xk.yaml").write_text(peer_file("xk", a.url, card(a)))
    fake = {
        **card(a),
        "broker_key": base64.b64encode(b"\x07" * 32).decode(),
        "log_origin": FAKE_ORIGIN,
        "log_key": base64.b64encode(FAKE_LOG.public_key().public_bytes_raw()).decode(),
    }
    (b.data / "policies" / "peers" / "rs.yaml").write_text(peer_file("rs", None, fake))
    with (
        serve_process(b.data, env=ENV, port=b.port) as (b.proc, _),
        serve_process(a.data, env=ENV, port=a.port) as (a.proc, _),
    ):
        yield a, b


def cosigned_by(note: str, name: str, public: bytes) -> int:
    """The cosignature of ``name`` on ``note``, checked without our code: PyNaCl over the bytes
    c2sp.org/tlog-cosignature names; its timestamp, or 0 when there is none."""
    body, _, signatures = note.partition("\n\n")
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    for line in signatures.splitlines():
        signer, _, blob = line.removeprefix(DASH).partition(" ")
        raw = base64.b64decode(blob)
        if signer == name and raw[:4] == key_id:
            (timestamp,) = struct.unpack(">Q", raw[4:12])
            VerifyKey(public).verify(
                f"cosignature/v1\ntime {timestamp}\n{body}\n".encode(), raw[12:]
            )
            return int(timestamp)
    return 0


def wait_for(check: Any, what: str, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def verify(side: Broker, peer: Broker) -> Any:
    _, log_key = side.log()
    return run_cli(
        "audit", "verify", "--data", side.data, "--url", side.url, "--as", side.auditor,
        "--checkpoint-key", base64.b64encode(log_key).decode(), "--peer", peer.url,
    )  # fmt: skip


async def _rewrite_history(database: Path, seq: int) -> None:
    """What A's compromised host does: alter an event, its leaf and the tree head in place, and
    delete the checkpoints (with their cosignatures) that the new history contradicts."""
    with sqlite3.connect(database, timeout=10) as conn:
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
        conn.execute("delete from audit_checkpoint")


def test_two_brokers_cosign_each_other_and_a_rewritten_history_is_refused(
    brokers: tuple[Broker, Broker],
) -> None:
    a, b = brokers
    a_name, b_name = witness_name(a.log()[0]), witness_name(b.log()[0])
    wait_for(lambda: cosigned_by(a.latest_note(), b_name, b.broker_key()), "B to cosign A")
    wait_for(lambda: cosigned_by(b.latest_note(), a_name, a.broker_key()), "A to cosign B")

    for side, peer, name in ((a, b, b_name), (b, a, a_name)):
        verified = verify(side, peer)
        assert verified.returncode == 0, verified.stderr
        assert (
            "witnessed: size " in verified.stdout and f"cosigned by {name} at " in verified.stdout
        )

    # Once A's log stops growing (the auditors' reads are recorded), B has cosigned its latest.
    def settled() -> Any:
        held = b.rows("select size, root from witness_log where origin = ?", a.log()[0])
        size = a.rows("select size from audit_head")[0][0]
        return held[0] if held and held[0][0] == size else None

    witnessed_size, witnessed_root = wait_for(settled, "B to cosign A's latest checkpoint")

    asyncio.run(_rewrite_history(a.data / "liaison.db", seq=3))
    caught = verify(a, b)  # also grows A's log: A signs the rewritten one and submits it
    assert caught.returncode == 1
    assert caught.stderr.strip() == (
        f"liaison: NOT witnessed: no checkpoint this log serves carries a valid cosignature "
        f"from {b_name}"
    )
    (evidence,) = wait_for(
        lambda: b.rows("select code, request from witness_evidence where origin = ?", a.log()[0]),
        "B to keep the evidence",
    )
    assert evidence[0] == "witness_inconsistent" and evidence[1].startswith(
        f"old {witnessed_size}\n"
    )
    assert b.rows("select size, root from witness_log where origin = ?", a.log()[0]) == [
        (witnessed_size, witnessed_root)
    ]  # B never moved to the rewritten history
    refused = b.rows("select body from audit_event where body like '%witness.refused%'")
    assert len(refused) == 1 and "rewrote its history" in refused[0][0]
    assert "checkpoint_not_cosigned" in output(a.proc) and '"status": 422' in output(a.proc)
    assert not cosigned_by(a.latest_note(), b_name, b.broker_key())


def fake_note(size: int, key: Ed25519PrivateKey = FAKE_LOG, origin: str = FAKE_ORIGIN) -> str:
    tree = CompactRange()
    for leaf in fake_leaves(size):
        tree.append(leaf)
    return sign_note(Checkpoint(origin, size, tree.root()).text(), origin, key)


def fake_leaves(size: int) -> list[bytes]:
    return [leaf_hash(b"rs event %d" % i) for i in range(size)]


async def _post(url: str, bodies: list[bytes]) -> list[tuple[int, str, str]]:
    async with aiohttp.ClientSession() as session:

        async def one(body: bytes) -> tuple[int, str, str]:
            async with session.post(url + "/v1/witness/add-checkpoint", data=body) as response:
                return response.status, response.content_type, await response.text()

        return list(await asyncio.gather(*(one(body) for body in bodies)))


def test_add_checkpoint_refuses_strangers_and_never_rolls_back(
    brokers: tuple[Broker, Broker],
) -> None:
    _, b = brokers
    stranger = Ed25519PrivateKey.generate()
    evidence_before = b.rows("select count(*) from witness_evidence")
    refused = asyncio.run(
        _post(
            b.url,
            [
                format_request(0, [], fake_note(5, stranger, "nobody.example/log")),
                format_request(0, [], fake_note(5, stranger)),  # the right origin, a wrong key
                b"old 0\nnot a request",
            ],
        )
    )
    assert [(status, kind) for status, kind, _ in refused] == [
        (404, "application/problem+json"),
        (403, "application/problem+json"),
        (400, "application/problem+json"),
    ]
    assert json.loads(refused[0][2])["code"] == "unknown_log"
    assert b.rows("select count(*) from witness_log where origin = ?", FAKE_ORIGIN) == [(0,)]
    assert b.rows("select count(*) from witness_evidence") == evidence_before

    ((status, _, lines),) = asyncio.run(_post(b.url, [format_request(0, [], fake_note(5))]))
    assert status == 200 and lines.startswith(DASH) and lines.endswith("\n")
    public = b.broker_key()
    b_name = witness_name(b.log()[0])
    assert cosigned_by(fake_note(5) + lines, b_name, public)

    # Two extensions decided on the same state at once: one wins, the other learns the size.
    eight, twelve = (
        format_request(5, consistency_proof(5, fake_leaves(n)), fake_note(n)) for n in (8, 12)
    )
    answers = asyncio.run(_post(b.url, [eight, twelve]))
    assert sorted(status for status, _, _ in answers) == [200, 409]
    won = 8 if answers[0][0] == 200 else 12
    conflict = next(a for a in answers if a[0] == 409)
    assert conflict[1] == "text/x.tlog.size" and conflict[2] == f"{won}\n"
    assert b.rows("select size from witness_log where origin = ?", FAKE_ORIGIN) == [(won,)]
    ((status, _, said),) = asyncio.run(_post(b.url, [eight]))  # 8 from 5 again: not from here
    assert (status, said) == (409, f"{won}\n")
    assert b.rows("select size from witness_log where origin = ?", FAKE_ORIGIN) == [(won,)]
