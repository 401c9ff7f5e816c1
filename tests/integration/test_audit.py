"""The tamper-evident audit log on a real broker: recorded, verifiable, and tampering named."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.client.errors import RecipientError
from broker.audit.checkpoint import Checkpoint
from broker.audit.events import LEAF_FORMAT, jcs, loads_leaf, recanonical
from broker.audit.verify import read_export, verify_export
from broker.crypto.note import open_note
from broker.http.keys import AUDIT
from tests import rfc9162
from tests.integration.intake_support import Broker, example, running_broker

AUDITOR = "mk-ombudsman-auditor"


@pytest.fixture
async def broker(demo_dir: Path, database_url: str) -> AsyncIterator[Broker]:
    async with running_broker(demo_dir, database_url) as running:
        yield running


async def story(broker: Broker) -> str:
    """Post for Kumanovo; the focal point reads and acknowledges; Sarajevo tries and fails."""
    async with broker.sender("mk-mvr") as sender:
        notice_id = str((await sender.post_notice(example("returnee-repatriation"))).body["id"])
    async with broker.recipient("mk-kumanovo-pcve") as pcve:
        await pcve.ack(notice_id)
    async with broker.recipient("ba-fbih-ks-sarajevo-pcve") as sarajevo:
        with pytest.raises(RecipientError):
            await sarajevo.read(notice_id)
    return notice_id


async def export(broker: Broker) -> tuple[dict[str, object], list[bytes]]:
    lines = [
        line async for line in broker.app[AUDIT].export("operator:test", broker.state.clock.now())
    ]
    header, events = read_export(lines)
    return header, list(events)


async def test_every_step_is_recorded_gapless_and_without_contents(broker: Broker) -> None:
    notice_id = await story(broker)
    rows = await broker.rows("select seq, action, actor, body from audit_event order by seq")
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert await broker.scalar("select size from audit_head") == len(rows)
    about = [(r.action, r.actor) for r in rows if f'"object":"notice:{notice_id}"' in r.body]
    assert ("notice.posted", "agency:mk-mvr") in about
    # Two leaves per accepted notice: posted, and one routed event naming every recipient.
    assert [a for a, _ in about][:2] == ["notice.posted", "notice.routed"]
    assert sum(1 for a, _ in about if a == "notice.routed") == 1
    assert not {"escrow.wrapped", "notice.unreachable"} & {a for a, _ in about}
    (routed,) = [json.loads(r.body) for r in rows if r.action == "notice.routed"]
    recipients = routed["details"]["recipients"]
    assert {r["rule"] for r in recipients} == {
        "municipal-pcve-focal-point",
        "municipal-social-welfare",
    }
    assert all(
        r["policies"] == [f"channel/returnee-repatriation/receive/{r['rule']}"] for r in recipients
    )
    assert routed["policies"] == list(dict.fromkeys(p for r in recipients for p in r["policies"]))
    wraps = {
        w.recipient_id: w.key_id
        for w in await broker.rows(
            "select recipient_id, key_id from notice_wrap where notice_id = :n", n=notice_id
        )
    }
    assert {r["contact"]: r["wrap_key"] for r in recipients}.items() <= wraps.items()
    assert routed["details"]["escrow_key"] in wraps.values()
    everything = " ".join(r.body for r in rows)
    for secret in ("Repatriation of two families", "psychosocial", "arrival_window"):
        assert secret not in everything


async def test_an_untouched_log_verifies_and_proofs_check_out_independently(broker: Broker) -> None:
    await story(broker)
    header, lines = await export(broker)
    result = verify_export(header, lines)
    assert result.ok, result.message
    async with broker.recipient(AUDITOR) as auditor:
        checkpoint = await auditor.audit_checkpoint(fresh=True)
        public = base64.b64decode(checkpoint["public_key"])
        signed = Checkpoint.parse(open_note(checkpoint["note"], checkpoint["key_name"], public))
        assert signed.size == checkpoint["size"]
        # Events of other jurisdictions (Sarajevo's token) come as leaf hashes in their place.
        page = await auditor.audit_events(limit=1000, hidden="leaves")
        events = page["events"][: signed.size]
        assert any(e.get("hidden") for e in events)
        # Each shown event carries its exact leaf bytes; its fields are those bytes, parsed.
        entries = {
            e["seq"]: base64.b64decode(e["leaf_data"]) for e in events if not e.get("hidden")
        }
        for e in events:
            if not e.get("hidden"):
                assert e.get("v") == LEAF_FORMAT
                assert recanonical(e) == entries[e["seq"]] == jcs(loads_leaf(entries[e["seq"]]))
        leaves = [
            bytes.fromhex(e["leaf"]) if e.get("hidden") else rfc9162.mth([entries[e["seq"]]])
            for e in events
        ]
        assert rfc9162.mth_of_leaf_hashes(leaves) == signed.root
        seq = min(s for s in entries if s >= 3)
        proof = await auditor.audit_inclusion(seq, signed.size)
        assert rfc9162.verify_inclusion(
            seq - 1,
            signed.size,
            entries[seq],
            [base64.b64decode(p) for p in proof["proof"]],
            signed.root,
        )
        first = 2
        consistency = await auditor.audit_consistency(first, signed.size)
        assert rfc9162.verify_consistency(
            first,
            signed.size,
            rfc9162.mth_of_leaf_hashes(leaves[:first]),
            signed.root,
            [base64.b64decode(p) for p in consistency["proof"]],
        )
        filtered = await auditor.audit_events(action="notice.posted")
        assert [e["action"] for e in filtered["events"]] == ["notice.posted"]
    reads = await broker.rows("select actor from audit_event where action = 'audit.read'")
    assert {r.actor for r in reads} == {f"contact:{AUDITOR}"}  # reading the log is itself recorded


async def test_only_auditors_read_the_log(broker: Broker) -> None:
    await story(broker)
    async with broker.recipient("mk-kumanovo-pcve") as focal_point:
        for call in (focal_point.audit_events(), focal_point.audit_checkpoint()):
            with pytest.raises(RecipientError) as caught:
                await call
            assert caught.value.status == 403
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{broker.url}/v1/audit/events") as response,
    ):
        assert response.status == 401


TAMPERING = {
    "edit a field": (
        'update audit_event set body = replace(body, \'"outcome":"ok"\', \'"outcome":"no"\') '
        "where seq = {k}",
        "event {k}: altered",
    ),
    "delete a row": (
        "delete from audit_event where seq = {k}",
        "event {k}: expected event {k} here, found event",
    ),
    "swap two rows": (None, "event {k}: expected event {k} here, found event"),
    # New events are appended after the cut (the export records itself), so the cut shows as a gap.
    "truncate the tail": (
        "delete from audit_event where seq > {k}",
        "event {k1}: expected event {k1} here",
    ),
}


@pytest.mark.parametrize("kind", list(TAMPERING))
async def test_tampering_is_detected_and_the_event_named(broker: Broker, kind: str) -> None:
    await story(broker)
    await broker.app[AUDIT].checkpoint(
        broker.state.clock.now()
    )  # the log as signed before the tampering
    k = 5
    sql, expected = TAMPERING[kind]
    async with broker.state.engine.begin() as conn:
        if sql is not None:
            await conn.execute(text(sql.format(k=k)))
        else:
            select = text("select body from audit_event where seq = :s")
            a = (await conn.execute(select, {"s": k})).scalar_one()
            b = (await conn.execute(select, {"s": k + 1})).scalar_one()
            await conn.execute(
                text("update audit_event set body = :b where seq = :s"), {"b": b, "s": k}
            )
            await conn.execute(
                text("update audit_event set body = :b where seq = :s"), {"b": a, "s": k + 1}
            )
    header, lines = await export(broker)
    result = verify_export(header, lines)
    assert not result.ok
    assert expected.format(k=k, k1=k + 1) in result.message, result.message
    assert result.bad_seq == (k + 1 if kind == "truncate the tail" else k)


async def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(broker: Broker) -> None:
    """An attacker who edits an event and re-chains everything after it still cannot sign."""
    from broker.audit.events import GENESIS
    from broker.audit.merkle import leaf_hash

    await story(broker)
    await broker.app[AUDIT].checkpoint(broker.state.clock.now())
    header, lines = await export(broker)
    forged, prev = [], GENESIS
    for i, line in enumerate(lines, 1):
        record = json.loads(line)
        record["prev"] = prev
        if i == 4:
            record["actor"] = "agency:someone-else"
        body = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        forged.append(body)
        prev = leaf_hash(body).hex()
    result = verify_export(header, forged)
    assert not result.ok and "does not match the checkpoint" in result.message


async def test_a_checkpoint_signed_by_another_key_is_refused(broker: Broker) -> None:
    from broker.crypto.keys import generate

    await story(broker)
    header, lines = await export(broker)
    other = generate("ed25519").public_raw
    result = verify_export(header, lines, trusted_key=other)
    assert not result.ok and "a checkpoint does not verify" in result.message


async def test_an_export_cut_short_is_named_as_truncated(broker: Broker) -> None:
    await story(broker)
    header, lines = await export(broker)
    result = verify_export(header, lines[:-3])
    assert not result.ok
    assert result.message.startswith(
        f"event {len(lines) - 2}: missing; a checkpoint was signed at size {len(lines)}"
    )
