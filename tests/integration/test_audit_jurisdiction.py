"""Attacker: an auditor (an auditor token) reading another country's audit trail.

A real broker on loopback, SQLite and PostgreSQL: the Bosnian ombudsperson sees nothing of a North
Macedonian notice (events, filters, proofs by index), the Macedonian one sees it, and a
supervisory auditor sees both only because a policy added to access.cedar says so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.client.errors import RecipientError
from adapters.client.recipient import RecipientClient
from broker.audit.verify import read_export, verify_export
from tests.integration.intake_support import Broker, example, running_broker

BA, MK, ME = "ba-ombudsman-auditor", "mk-ombudsman-auditor", "me-ombudsman-auditor"
SUPERVISORY = """
// Test: the Montenegrin ombudsperson's office as a regional supervisor of BiH and North Macedonia.
@id("access/test-regional-supervisor")
permit (
  principal is Liaison::Contact,
  action == Liaison::Action::"audit_jurisdiction",
  resource is Liaison::Jurisdiction
)
when {
  principal.role_kinds.contains("auditor") &&
  principal.organisation == Liaison::Organisation::"me-ombudsman" &&
  (resource in Liaison::Jurisdiction::"ba" || resource in Liaison::Jurisdiction::"mk")
};
"""


@pytest.fixture
async def broker(demo_dir: Path, database_url: str) -> AsyncIterator[Broker]:
    async with running_broker(demo_dir, database_url) as running:
        yield running


async def two_notices(broker: Broker) -> tuple[str, str]:
    """A Kumanovo notice, read and acknowledged there; a Sarajevo notice from the Bosnian OSA."""
    async with broker.sender("mk-mvr") as sender:
        mk = str((await sender.post_notice(example("returnee-repatriation"))).body["id"])
    async with broker.recipient("mk-kumanovo-pcve") as pcve:
        await pcve.ack(mk)
    bosnian = {**example("returnee-repatriation"), "jurisdiction": "ba-fbih-ks-sarajevo"}
    async with broker.sender("ba-osa") as sender:
        ba = str((await sender.post_notice(bosnian)).body["id"])
    return mk, ba


async def everything(auditor: RecipientClient, **filters: str) -> list[dict[str, Any]]:
    events, cursor = [], 0
    while True:
        page = await auditor.audit_events(cursor=cursor, limit=7, **filters)  # several pages
        events.extend(page["events"])
        if page["next_cursor"] is None:
            return events
        cursor = int(page["next_cursor"])


async def seqs_about(broker: Broker, notice_id: str) -> list[int]:
    rows = await broker.rows("select seq from audit_event where notice_id = :n", n=notice_id)
    return sorted(r.seq for r in rows)


async def test_a_bosnian_auditor_sees_nothing_of_a_macedonian_notice(broker: Broker) -> None:
    mk, ba = await two_notices(broker)
    about_mk = await seqs_about(broker, mk)
    assert len(about_mk) >= 3  # posted, routed (every recipient in one event), acknowledged...
    async with broker.recipient(BA) as auditor:
        seen = await everything(auditor)
        text = json.dumps(seen)
        assert mk not in text and "agency:mk-mvr" not in text
        # The register and the rules are log-wide (they name every country's jurisdictions);
        # nothing else says anything of Kumanovo.
        local = [e for e in seen if e["action"] not in ("directory.applied", "policy.loaded")]
        assert "mk-kumanovo" not in json.dumps(local)
        assert ba in text and {e["seq"] for e in seen}.isdisjoint(about_mk)
        for filters in (
            {"notice": mk},
            {"actor": "agency:mk-mvr"},
            {"actor": "contact:mk-kumanovo-pcve"},
            {"action": "delivery.acknowledged"},
        ):
            assert await everything(auditor, **filters) == [], filters
        by_channel = await everything(auditor, channel="returnee-repatriation")
        assert by_channel and mk not in json.dumps(by_channel)
        size = (await auditor.audit_checkpoint(fresh=True))["size"]  # the checkpoint is shown
        for seq in about_mk:
            with pytest.raises(RecipientError) as caught:
                await auditor.audit_inclusion(seq, size)
            assert caught.value.status == 404 and caught.value.problem["code"] == "not_found"
        in_place = (await auditor.audit_events(limit=1000, hidden="leaves"))["events"]
        hidden = {e["seq"]: e for e in in_place if e.get("hidden")}
        assert set(about_mk) <= set(hidden)
        assert all(set(e) == {"seq", "hidden", "leaf"} for e in hidden.values())
        others = [e for e in in_place if e.get("actor") != f"contact:{BA}"]  # not its own queries
        assert mk not in json.dumps(others)
        with pytest.raises(RecipientError) as caught:
            await auditor.audit_events(hidden="leaves", notice=mk)
        assert caught.value.status == 422
        header, lines = read_export([line async for line in auditor.audit_export()])
        result = verify_export(header, list(lines))
        assert result.ok and result.hidden >= len(about_mk), result.message
    async with broker.recipient(MK) as auditor:
        seen = await everything(auditor)
        mine = [e for e in seen if e["object"] == f"notice:{mk}"]
        assert {e["seq"] for e in mine} == set(about_mk)
        assert {"notice.posted", "notice.fetched", "delivery.acknowledged"} <= {
            e["action"] for e in mine
        }
        assert ba not in json.dumps(seen)
        assert (await auditor.audit_inclusion(about_mk[0], size))["event"]["object"] == (
            f"notice:{mk}"
        )
    async with broker.recipient(ME) as auditor:
        assert not {mk, ba} & {
            e["object"].removeprefix("notice:") for e in await everything(auditor)
        }


async def test_an_audit_page_examines_at_most_scan_max_events_then_ends_with_a_cursor(
    demo_dir: Path, database_url: str
) -> None:
    """Attacker: an auditor asking for pages of a log where little is theirs, to make each
    request scan the whole log. ``audit.scan_max_events`` bounds the scan of one page."""
    env = {"LIAISON_AUDIT_SCAN_MAX_EVENTS": "3"}
    async with running_broker(demo_dir, database_url, env=env) as broker:
        mk, ba = await two_notices(broker)
        log_size = len(await broker.rows("select seq from audit_event"))
        async with broker.recipient(BA) as auditor:
            seen: list[dict[str, Any]] = []
            cursor, pages = 0, 0
            while True:
                page = await auditor.audit_events(cursor=cursor, limit=1000)
                pages += 1
                seen.extend(page["events"])
                if page["next_cursor"] is None:
                    break
                assert 0 < int(page["next_cursor"]) - cursor <= 3  # three examined, no more
                cursor = int(page["next_cursor"])
    assert pages >= log_size // 3
    text = json.dumps(seen)
    assert ba in text and mk not in text


async def test_a_supervisory_auditor_sees_both_only_by_an_added_policy(
    demo_dir: Path, database_url: str
) -> None:
    access = demo_dir / "policies" / "access.cedar"
    access.write_text(access.read_text() + SUPERVISORY)
    async with running_broker(demo_dir, database_url) as broker:
        mk, ba = await two_notices(broker)
        async with broker.recipient(ME) as supervisor:
            objects = {e["object"] for e in await everything(supervisor)}
            assert {f"notice:{mk}", f"notice:{ba}"} <= objects
            header, lines = read_export([line async for line in supervisor.audit_export()])
            assert verify_export(header, list(lines)).ok
        async with broker.recipient(BA) as auditor:  # the others are as before
            assert f"notice:{mk}" not in {e["object"] for e in await everything(auditor)}
        reads = [
            json.loads(body)
            for (body,) in await broker.rows(
                "select body from audit_event where action = 'audit.read' and actor = :a",
                a=f"contact:{ME}",
            )
        ]
        assert reads and all("access/test-regional-supervisor" in e["policies"] for e in reads)


def test_liaison_audit_verify_as_a_bosnian_auditor_holds_macedonian_events_by_hash(
    demo_dir: Path, tmp_path: Path
) -> None:
    """The real CLI against a real `liaison serve`: verification passes and says what it hid;
    the auditor's export carries nothing of the Macedonian notice but its leaf hashes."""
    from tests.conftest import POLICIES
    from tests.support import run_cli, serve_process

    with serve_process(demo_dir) as (_, url):
        common = ["--data", str(demo_dir), "--url", url]
        sent = run_cli(
            "send", POLICIES / "examples" / "returnee-repatriation.json", *common, "--as", "mk-mvr"
        )
        notice_id = sent.stdout.split()[2].rstrip(":")
        verified = run_cli("audit", "verify", *common, "--as", BA)
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.startswith("OK: verified") and "outside your view" in verified.stdout
        out = tmp_path / "ba.jsonl"
        exported = run_cli("audit", "export", *common, "--as", BA, "--out", out)
        assert exported.returncode == 0, exported.stderr
        mine = run_cli("audit", "verify", *common, "--as", MK)
        assert mine.returncode == 0 and mine.stdout.startswith("OK: verified"), mine.stderr
    text = out.read_text()
    assert notice_id not in text and '"hidden":true' in text
    assert run_cli("audit", "verify", out).returncode == 0
