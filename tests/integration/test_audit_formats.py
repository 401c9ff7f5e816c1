"""Both audit leaf formats in one log, checked by the broker's verifier, the CLI and a verifier in
another language (tests/interop/audit_verify.mjs, Node's own crypto only) from the API alone.

The log is one a broker upgraded in place would hold: v1 leaves (fixed key order, as written
before RFC 8785) under a checkpoint, then v2 leaves (JCS) under a later one. Attacker: a
compromised broker host editing the store directly (THREATS.md); the signed checkpoints, whose
key it does not hold, are what every verifier checks it against.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from adapters.client.errors import RecipientError
from broker.audit.checkpoint import Checkpoint
from broker.audit.events import LEAF_FORMAT, AuditEvent, canonical_v1, jcs, loads_leaf
from broker.audit.verify import read_export, verify_export
from broker.crypto.note import open_note
from broker.http.keys import AUDIT
from broker.store import audit_repo
from tests.integration.intake_support import Broker, example, running_broker
from tests.support import run_cli

AUDITOR = "mk-ombudsman-auditor"
VERIFIER = Path(__file__).resolve().parents[1] / "interop" / "audit_verify.mjs"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None, reason="no node on PATH: the JavaScript verifier cannot run"
)


async def _post_and_read(broker: Broker) -> None:
    async with broker.sender("mk-mvr") as sender:
        notice_id = str((await sender.post_notice(example("returnee-repatriation"))).body["id"])
    async with broker.recipient("mk-kumanovo-pcve") as pcve:
        await pcve.ack(notice_id)
    async with broker.recipient("ba-fbih-ks-sarajevo-pcve") as sarajevo:  # not the MK auditor's
        with pytest.raises(RecipientError):
            await sarajevo.read(notice_id)


@dataclass
class Upgraded:
    broker: Broker
    last_v1: int  # the log's size when the broker was upgraded (and a checkpoint signed)
    size: int  # the log's size at the last checkpoint


@pytest.fixture
async def upgraded(
    demo_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Upgraded]:
    """A store written by a broker from before v2 (its directory, a notice, a checkpoint), then
    by this one (another notice, a checkpoint): what an upgrade in place leaves."""
    monkeypatch.setattr(audit_repo, "canonical", canonical_v1)  # the old broker's leaves
    # Not a prepared store: the old broker writes the directory's events too.
    async with running_broker(demo_dir, database_url, prepared=False) as broker:
        service = broker.app[AUDIT]
        await _post_and_read(broker)
        last_v1, _ = await service.checkpoint(broker.state.clock.now())
        monkeypatch.undo()  # the upgrade
        await _post_and_read(broker)
        size, _ = await service.checkpoint(broker.state.clock.now())
        bodies = [r.body for r in await broker.rows("select body from audit_event order by seq")]
        assert all(b.startswith('{"seq":') for b in bodies[:last_v1])
        assert all(json.loads(b).get("v") == LEAF_FORMAT for b in bodies[last_v1:])
        yield Upgraded(broker, last_v1, size)


async def _javascript(broker: Broker) -> tuple[int, str]:
    """Run the JavaScript verifier as the auditor, the log key pinned out of band."""
    async with broker.recipient(AUDITOR) as auditor:
        token = await auditor.token()
    key = base64.b64encode(broker.app[AUDIT].public).decode()
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(VERIFIER),
        broker.url,
        key,
        env={"LIAISON_TOKEN": token, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def _export(broker: Broker) -> tuple[dict[str, object], list[bytes]]:
    lines = [
        line async for line in broker.app[AUDIT].export("operator:test", broker.state.clock.now())
    ]
    header, events = read_export(lines)
    return header, list(events)


@needs_node
async def test_javascript_recomputes_both_leaf_formats_and_the_signed_roots(
    upgraded: Upgraded,
) -> None:
    broker, last_v1, size = upgraded.broker, upgraded.last_v1, upgraded.size
    code, out = await _javascript(broker)
    assert code == 0, out
    assert out.startswith("OK: ") and "signed checkpoint(s)" in out, out
    assert int(out.split(" under ")[1].split()[0]) >= 2, out  # the v1 one and the v2 one
    assert " 0 as leaf hashes" not in out, out  # Sarajevo's token: hidden, checked by hash
    # It walked past both formats: everything up to the last checkpoint is a leaf it hashed.
    assert int(out.split()[1]) == size > last_v1


@needs_node
async def test_javascript_names_events_a_compromised_host_edited_in_the_store(
    upgraded: Upgraded,
) -> None:
    """First a v2 event edited (still canonical JCS, so only the chain can tell); then, with it
    put back, an old v1 event edited and every link after it rewritten, with the stored leaf
    hashes served for hidden events: only the signed root is left, and it does not match."""
    from broker.audit.merkle import leaf_hash

    broker, last_v1, size = upgraded.broker, upgraded.last_v1, upgraded.size
    victim = (
        await broker.rows(
            "select seq, body from audit_event where seq > :a and seq < :b and actor = :who "
            "order by seq",
            a=last_v1,
            b=size,
            who="agency:mk-mvr",
        )
    )[0]
    forged = loads_leaf(victim.body)
    forged["actor"] = "agency:mk-mvr-forged"
    update = text("update audit_event set body = :b where seq = :s")
    async with broker.state.engine.begin() as conn:
        await conn.execute(update, {"b": jcs(forged).decode(), "s": victim.seq})
    code, out = await _javascript(broker)
    assert code == 1 and out.startswith(f"FAIL: event {victim.seq}: altered"), out
    async with broker.state.engine.begin() as conn:
        await conn.execute(update, {"b": victim.body, "s": victim.seq})
    code, out = await _javascript(broker)
    assert code == 0, out  # put back: it was that edit, and nothing else, that failed

    rows = await broker.rows("select seq, body from audit_event order by seq")
    prev = None
    async with broker.state.engine.begin() as conn:
        for row in rows[2:]:
            body = row.body
            if prev is not None:
                old = json.loads(body)["prev"]
                body = body.replace(f'"prev":"{old}"', f'"prev":"{prev}"', 1)
            if row.seq == 3:
                assert row.seq <= last_v1 and body.startswith('{"seq":')
                body = body.replace('"outcome":"ok"', '"outcome":"no"', 1)
            prev = leaf_hash(body.encode()).hex()
            await conn.execute(
                text("update audit_event set body = :b, leaf = :l where seq = :s"),
                {"b": body, "l": bytes.fromhex(prev), "s": row.seq},
            )
    code, out = await _javascript(broker)
    assert code == 1, out
    assert "does not match the checkpoint signed at size" in out, out
    header, lines = await _export(broker)
    assert not verify_export(header, lines).ok


async def test_the_cli_verifies_an_upgraded_log_and_an_old_export(
    upgraded: Upgraded, tmp_path: Path
) -> None:
    broker = upgraded.broker
    header, lines = await _export(broker)
    assert verify_export(header, lines).ok
    out = tmp_path / "log.jsonl"
    out.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(lines))
    key = base64.b64encode(broker.app[AUDIT].public).decode()
    verified = await asyncio.to_thread(run_cli, "audit", "verify", out, "--checkpoint-key", key)
    assert verified.returncode == 0 and verified.stdout.startswith("OK: verified"), verified.stderr
    # An export written before v2 (its header liaison-audit-v1, v1 lines only) still verifies.
    size = next(n for n in range(len(lines)) if not lines[n].startswith(b'{"seq":'))
    old_notes = [n for n in header["checkpoints"] if int(n.split("\n")[1]) <= size]  # type: ignore[attr-defined]
    old = {**header, "format": "liaison-audit-v1", "checkpoints": old_notes}
    del old["origins"]
    result = verify_export(old, lines[:size])
    assert result.ok and result.events == size, result.message


async def test_events_and_proofs_carry_the_exact_leaf_bytes_of_either_format(
    upgraded: Upgraded,
) -> None:
    from broker.audit.merkle import leaf_hash

    broker, last_v1, size = upgraded.broker, upgraded.last_v1, upgraded.size
    async with broker.recipient(AUDITOR) as auditor:
        page = await auditor.audit_events(limit=1000)
        rows = await broker.rows("select seq, leaf from audit_event")
        stored = {r.seq: bytes(r.leaf) for r in rows}
        for event in page["events"]:
            data = base64.b64decode(event["leaf_data"])
            assert leaf_hash(data) == stored[event["seq"]]
            assert ("v" in event) == (event["seq"] > last_v1)
        proof = await auditor.audit_inclusion(page["events"][0]["seq"], size)
        assert base64.b64decode(proof["leaf_hash"]) == leaf_hash(
            base64.b64decode(proof["event"]["leaf_data"])
        )


async def _get(broker: Broker, contact: str, path: str) -> tuple[int, dict[str, Any]]:
    async with broker.recipient(contact) as client:
        token = await client.token()
    async with (
        aiohttp.ClientSession() as http,
        http.get(broker.url + path, headers={"Authorization": f"Bearer {token}"}) as answer,
    ):
        return answer.status, await answer.json(content_type=None)


async def test_every_signed_checkpoint_is_listed_a_page_at_a_time(upgraded: Upgraded) -> None:
    broker = upgraded.broker
    service = broker.app[AUDIT]
    for _ in range(3):  # a few more signed sizes
        await audit_repo.append_events(
            broker.state.engine,
            [AuditEvent(broker.state.clock.now(), "broker", "test.tick", "audit:log")],
        )
        await service.checkpoint(broker.state.clock.now())
    signed = [r.size for r in await broker.rows("select size from audit_checkpoint order by size")]
    assert len(signed) >= 5
    listed: list[dict[str, Any]] = []
    cursor = "0"
    while cursor:
        status, page = await _get(broker, AUDITOR, f"/v1/audit/checkpoints?limit=2&cursor={cursor}")
        assert status == 200 and len(page["checkpoints"]) <= 2, page
        assert page["origin"] == service.origin and page["origins"] == [service.origin]
        assert base64.b64decode(page["public_key"]) == service.public
        listed += page["checkpoints"]
        cursor = page["next_cursor"]
    assert [c["size"] for c in listed] == signed
    for c in listed:
        checkpoint = Checkpoint.parse(open_note(c["note"], service.origin, service.public))
        assert checkpoint.size == c["size"]
    for bad in ("limit=0", "cursor=abc", "limit=x"):
        status, problem = await _get(broker, AUDITOR, f"/v1/audit/checkpoints?{bad}")
        assert status == 422 and problem["status"] == 422, (bad, problem)
    status, _ = await _get(broker, "mk-kumanovo-pcve", "/v1/audit/checkpoints")
    assert status == 403


async def test_the_origin_is_a_setting_and_a_changed_one_still_verifies(
    demo_dir: Path, database_url: str
) -> None:
    from broker.service.audit import AuditService

    name = "broker.example.org/liaison/audit"
    env = {"LIAISON_AUDIT_ORIGIN": name}
    async with running_broker(demo_dir, database_url, env=env) as broker:
        service = broker.app[AUDIT]
        size, note = await service.checkpoint(broker.state.clock.now())
        assert note.startswith(f"{name}\n{size}\n") and f"\u2014 {name} " in note
        # The same log, the same key, first named by the default (an older broker's name).
        old = AuditService(broker.state, service.keys, page_max=10)
        assert old.origin == service.keys.origin
        await audit_repo.append_events(
            broker.state.engine,
            [AuditEvent(broker.state.clock.now(), "broker", "test.tick", "audit:log")],
        )
        await old.checkpoint(broker.state.clock.now())
        header, lines = await _export(broker)
        assert header["origins"] == [old.origin, name] and header["origin"] == name
        result = verify_export(header, lines, trusted_key=service.public)
        assert result.ok, result.message
        # Without the earlier name in the header, a checkpoint under it is another log's.
        refused = verify_export({**header, "origins": [name]}, lines)
        assert not refused.ok and "another log" in refused.message


@pytest.mark.parametrize("origin", ["has space", "a+b", "tab\tname", "x" * 201, "é.example/log"])
def test_an_origin_that_cannot_name_a_signed_note_is_refused(tmp_path: Path, origin: str) -> None:
    from broker.config import load_settings
    from broker.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[audit\] origin"):
        load_settings(tmp_path, {"LIAISON_AUDIT_ORIGIN": origin})


async def test_a_v2_line_that_is_not_its_own_jcs_form_is_refused(upgraded: Upgraded) -> None:
    """Same meaning, other bytes (a space, a key twice, another number form, a version no one
    knows): refused by name before any hash, so no two parsers can read two meanings."""
    header, lines = await _export(upgraded.broker)
    k = upgraded.last_v1 + 2
    line = lines[k - 1].rstrip(b"\n")
    record = loads_leaf(line)
    for spoiled, expected in (
        (line.replace(b'":', b'": ', 1), "not a canonical audit event"),
        (line[:-1] + b',"seq":' + str(k).encode() + b"}", "not a canonical audit event"),
        (jcs({**record, "v": 3}), "leaf format 3 is not one this verifier knows"),
        (
            jcs({**record, "details": {"n": 1.0}}).replace(b'"n":1', b'"n":1.0'),
            "not a canonical audit event",
        ),
    ):
        forged = [*lines[: k - 1], spoiled + b"\n", *lines[k:]]
        result = verify_export(header, forged)
        assert not result.ok and result.bad_seq == k and expected in result.message, result.message
