"""Two-person release: a RED notice waits, wrapped for the escrow only, for a second officer.

Played against a real broker on loopback (SQLite file, then PostgreSQL): the first officer of
the interior ministry posts on a channel that requires release; nothing is delivered, no e-mail
or webhook row exists and only the escrow holds a wrap. The attackers follow — the poster
approving their own notice, another agency's officer, an approval over another digest, a
compromised host editing the store — then the second officer releases it, and the recipient
reads and verifies it. Refusal by an officer and by timeout close it unrouted, audited.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.client.errors import RecipientError
from adapters.client.sender import SenderClient, SenderError
from broker.clock import FrozenClock
from broker.crypto.httpsig import content_digest
from broker.crypto.keys import KeyPair, generate
from broker.http.keys import RELEASE
from broker.service.directory import apply_directory_file
from tests.integration.intake_support import (
    SUCCESSOR,
    Broker,
    example,
    hand_over_swc,
    running_broker,
)
from tests.support import LIAISON, free_port, run_cli

CHANNEL, POSTER, PCVE = "returnee-repatriation", "mk-mvr", "mk-kumanovo-pcve"


def _require_release(demo_dir: Path) -> None:
    """The repatriation channel made RED (which never escalates) with two-person release."""
    path = demo_dir / "policies" / "channels" / f"{CHANNEL}.yaml"
    text = path.read_text().replace("marking: AMBER+STRICT", "marking: RED")
    text = text.replace("escalation: [mayor]\n", "")
    path.write_text(text + "release: {approvals: 2, timeout_hours: 4}\n")


def _second_officer(demo_dir: Path) -> KeyPair:
    """A second Ed25519 key bound to the interior ministry in the directory."""
    pair = generate("ed25519")
    path = demo_dir / "directory.yaml"
    lines = path.read_text().splitlines(keepends=True)
    start = f"  - {{id: {POSTER}, name:"
    (index,) = [i for i, line in enumerate(lines) if line.startswith(start)]
    entry = f"{{id: {pair.key_id(POSTER)}, type: ed25519, public: '{pair.public_b64}', status: active}}, "
    lines[index] = lines[index].replace("keys: [", "keys: [" + entry, 1)
    path.write_text("".join(lines))
    return pair


def _client(broker: Broker, pair: KeyPair, owner: str) -> SenderClient:
    return SenderClient.from_pem(broker.url, pair.pem(), pair.key_id(owner), retries=0)


def _digest(notice: dict[str, Any]) -> str:
    return content_digest(json.dumps(notice, ensure_ascii=False).encode())


async def _events(broker: Broker, notice_id: str) -> list[dict[str, Any]]:
    rows = await broker.rows(
        "SELECT body FROM audit_event WHERE object = :o ORDER BY seq", o=f"notice:{notice_id}"
    )
    return [json.loads(r[0]) for r in rows]


async def _refused(call: Any) -> int:
    with pytest.raises(SenderError) as refused:
        await call
    return int(refused.value.status or 0)


@pytest.fixture
def release_dir(demo_dir: Path) -> tuple[Path, KeyPair]:
    _require_release(demo_dir)
    return demo_dir, _second_officer(demo_dir)


async def test_a_red_notice_waits_for_a_second_officer_and_no_one_else_can_release_it(
    release_dir: tuple[Path, KeyPair], database_url: str
) -> None:
    demo_dir, officer = release_dir
    notice = example(CHANNEL)
    # E-mail on (a closed port): an announcement is a row in the outbox, kept while it fails.
    env = {"LIAISON_SMTP_HOST": "127.0.0.1", "LIAISON_SMTP_PORT": str(free_port())}
    async with running_broker(demo_dir, database_url, env=env) as broker:
        async with broker.sender(POSTER) as poster:
            posted = (await poster.post_notice(notice)).body
            notice_id = posted["id"]
            assert posted["release"] == "waiting"
            # Held: only the escrow's wrap, no delivery, no e-mail or webhook row.
            wraps = await broker.rows(
                "SELECT recipient_id FROM notice_wrap WHERE notice_id = :n", n=notice_id
            )
            assert [w[0] for w in wraps] == ["broker-escrow"]
            assert (
                await broker.scalar(
                    "SELECT count(*) FROM delivery WHERE notice_id = :n", n=notice_id
                )
                == 0
            )
            assert await broker.scalar("SELECT count(*) FROM outbox") == 0
            async with broker.recipient(PCVE) as reader:
                assert (await reader.inbox())["items"] == []
            status = (await poster.status(notice_id)).body
            assert status["status"] == "held" and status["release"]["state"] == "waiting"
            assert status["roles"] == []
            # The poster approving their own notice: refused.
            assert await _refused(poster.approve(notice_id, _digest(notice))) == 403
        async with broker.sender("al-asp") as stranger:  # another agency's officer
            assert await _refused(stranger.approve(notice_id, _digest(notice))) == 404
        async with _client(broker, officer, POSTER) as second:
            other = {**notice, "subject": "Something else"}
            assert await _refused(second.approve(notice_id, _digest(other))) == 403
            assert (
                await broker.scalar(
                    "SELECT count(*) FROM delivery WHERE notice_id = :n", n=notice_id
                )
                == 0
            )
            released = (await second.approve(notice_id, _digest(notice))).body
            assert released == {
                "id": notice_id,
                "release": "approved",
                "by": officer.key_id(POSTER),
            }
            assert await _refused(second.approve(notice_id, _digest(notice))) == 403  # once
        async with broker.recipient(PCVE) as reader:
            items = (await reader.inbox())["items"]
            assert {i["notice_id"] for i in items} == {notice_id}
            read = await reader.read(notice_id)
        assert read.notice["subject"] == notice["subject"]
        assert read.sender_key_id == broker.agency_key(POSTER).key_id(POSTER)
        async with broker.sender(POSTER) as poster:
            status = (await poster.status(notice_id)).body
        assert status["status"] == "active"
        assert status["release"]["state"] == "approved"
        assert status["release"]["decided_by"] == officer.key_id(POSTER)
        mails = await broker.rows("SELECT notice_id FROM outbox")
        assert mails and {m[0] for m in mails} == {notice_id}  # announced on release only
        events = await _events(broker, notice_id)
    actions = [e["action"] for e in events]
    assert actions.index("notice.held") < actions.index("notice.approved")
    assert actions.index("notice.approved") < actions.index("notice.routed")
    assert actions.count("notice.routed") == 1  # not at intake: only when released
    refused = [e for e in events if e["action"] == "notice.release_refused"]
    assert [e["reason"] for e in refused] == ["same_officer", "not_found", "digest", "approved"]
    routed = next(e for e in events if e["action"] == "notice.routed")
    assert {r["contact"] for r in routed["details"]["recipients"]} == {PCVE, "mk-kumanovo-swc"}
    assert all(r["wrap_key"] for r in routed["details"]["recipients"])
    approved = next(e for e in events if e["action"] == "notice.approved")
    assert approved["details"]["officer_key"] == officer.key_id(POSTER)
    assert approved["details"]["content_digest"] == _digest(notice)


async def test_a_role_handed_over_while_the_notice_waits_reaches_the_successor_on_approval(
    release_dir: tuple[Path, KeyPair], database_url: str, tmp_path: Path
) -> None:
    """Attacker: a former role holder. Who receives a released notice is decided at approval,
    as for an update or an escalation, so a holder who left while it waited gets nothing."""
    demo_dir, officer = release_dir
    notice = example(CHANNEL)
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    async with running_broker(demo_dir, database_url, clock=clock) as broker:
        async with broker.sender(POSTER, clock) as poster:
            notice_id = (await poster.post_notice(notice)).body["id"]
        changed = tmp_path / "directory-changed.yaml"
        changed.write_text(hand_over_swc(broker, clock.now() + timedelta(hours=1)))
        await apply_directory_file(
            broker.state.engine, changed, actor="test", now=clock.now(), max_bytes=10**7
        )
        assert await broker.state.refresh_directory()
        clock.advance(timedelta(hours=2))  # within the 4 h the notice may wait
        second = SenderClient.from_pem(
            broker.url,
            officer.pem(),
            officer.key_id(POSTER),
            retries=0,
            clock=lambda: clock.now().timestamp(),
        )
        async with second:
            await second.approve(notice_id, _digest(notice))
        delivered = await broker.rows(
            "SELECT contact_id FROM delivery WHERE notice_id = :n", n=notice_id
        )
        wrapped = await broker.rows(
            "SELECT recipient_id FROM notice_wrap WHERE notice_id = :n", n=notice_id
        )
        assert {d[0] for d in delivered} == {PCVE, SUCCESSOR}
        assert "mk-kumanovo-swc" not in {w[0] for w in wrapped}
        async with broker.recipient(SUCCESSOR, clock) as successor:
            assert (await successor.read(notice_id)).notice["subject"] == notice["subject"]


async def test_refused_and_timed_out_notices_are_never_routed_and_status_says_so(
    release_dir: tuple[Path, KeyPair], database_url: str
) -> None:
    demo_dir, officer = release_dir
    notice = example(CHANNEL)
    clock = FrozenClock(datetime.now(UTC))
    async with running_broker(demo_dir, database_url, clock=clock) as broker:
        async with broker.sender(POSTER) as poster:
            first = (await poster.post_notice(notice)).body["id"]
            second = (await poster.post_notice({**notice, "subject": "Second"})).body["id"]
        async with _client(broker, officer, POSTER) as officer_client:
            answer = (await officer_client.refuse(first, _digest(notice), "not verified")).body
        assert answer["release"] == "refused"
        clock.advance(timedelta(hours=5))  # past the channel's 4 h
        assert await broker.app[RELEASE].expire(clock.now()) == 1
        clock.set(datetime.now(UTC))
        async with broker.sender(POSTER) as poster:
            refused = (await poster.status(first)).body
            timed_out = (await poster.status(second)).body
        assert await broker.scalar("SELECT count(*) FROM delivery") == 0
        async with _client(broker, officer, POSTER) as officer_client:
            late = officer_client.approve(second, _digest({**notice, "subject": "Second"}))
            assert await _refused(late) == 403
        timeout_events = await _events(broker, second)
    assert refused["status"] == "refused" and refused["release"]["state"] == "refused"
    assert refused["release"]["reason"] == "not verified"
    assert timed_out["status"] == "refused" and timed_out["release"]["state"] == "timed_out"
    assert "notice.release_timed_out" in [e["action"] for e in timeout_events]


async def test_a_compromised_host_marking_the_notice_approved_in_the_store_gains_nothing(
    release_dir: tuple[Path, KeyPair], database_url: str
) -> None:
    """Without the escrow key, editing the store cannot make the notice readable; the audit log
    shows a release that no officer signed (README: what a host WITH the escrow key can do)."""
    demo_dir, _ = release_dir
    async with running_broker(demo_dir, database_url) as broker:
        async with broker.sender(POSTER) as poster:
            notice_id = (await poster.post_notice(example(CHANNEL))).body["id"]
        async with broker.state.engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(
                text("UPDATE notice_release SET state = 'approved' WHERE notice_id = :n"),
                {"n": notice_id},
            )
            await conn.execute(
                text("UPDATE notice SET status = 'active' WHERE id = :n"), {"n": notice_id}
            )
            await conn.execute(
                text(
                    "INSERT INTO delivery (notice_id, contact_id, role_id, jurisdiction_id, rule,"
                    " policy_ids, deputy, state, created_at) VALUES (:n, :c,"
                    " 'mk-kumanovo.pcve-focal-point', 'mk-kumanovo', 'forged', '[]', false,"
                    " 'pending', :t)"
                ),
                {"n": notice_id, "c": PCVE, "t": datetime.now(UTC)},
            )
        async with broker.recipient(PCVE) as reader:
            with pytest.raises(RecipientError) as unreadable:
                await reader.read(notice_id)
        events = await _events(broker, notice_id)
    assert "notice.held" in [e["action"] for e in events]
    assert "notice.approved" not in [e["action"] for e in events]  # the auditor's evidence
    # No wrap exists for the recipient (only the escrow's): the broker has nothing to hand out.
    assert unreadable.value.status == 410


def test_policy_check_names_file_and_line_of_a_bad_release_option(demo_dir: Path) -> None:
    path = demo_dir / "policies" / "channels" / f"{CHANNEL}.yaml"
    path.write_text(path.read_text() + "release: {approvals: 3}\n")
    checked = run_cli("policy", "check", demo_dir / "policies")
    assert checked.returncode != 0
    assert f"{CHANNEL}.yaml:" in checked.stderr + checked.stdout
    assert "release" in checked.stderr + checked.stdout


async def _cli(*args: str | Path) -> tuple[int, str, str]:
    """The command as a child process, awaited: the broker runs in this test's event loop."""
    proc = await asyncio.create_subprocess_exec(
        *LIAISON,
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_the_second_officer_approves_with_liaison_approve_and_status_shows_it(
    release_dir: tuple[Path, KeyPair], tmp_path: Path
) -> None:
    demo_dir, officer = release_dir
    key = tmp_path / "officer.pem"
    key.write_bytes(officer.pem())
    reviewed = tmp_path / "reviewed.json"
    reviewed.write_text(json.dumps(example(CHANNEL)))
    url = f"sqlite+aiosqlite:///{tmp_path / 'liaison.db'}"
    async with running_broker(demo_dir, url) as broker:
        agency = ["--data", demo_dir, "--url", broker.url, "--as", POSTER]
        code, out, err = await _cli("send", reviewed, *agency)
        assert code == 0, err
        notice_id = out.split()[2].rstrip(":")
        assert "held for two-person release" in out
        code, out, err = await _cli("status", notice_id, *agency)
        assert code == 0, err
        assert "release: waiting for a second officer until " in out
        code, out, err = await _cli("approve", notice_id, reviewed, *agency)
        assert code == 1 and "the officer who posted a notice cannot release it" in err
        second = ["--url", broker.url, "--key", key, "--keyid", officer.key_id(POSTER)]
        code, out, err = await _cli("approve", notice_id, reviewed, *second)
        assert code == 0, err
        assert out.strip() == f"Notice {notice_id}: approved by {officer.key_id(POSTER)}"
        code, out, err = await _cli("status", notice_id, *agency)
    assert code == 0, err
    assert f"release: approved by {officer.key_id(POSTER)} at " in out
    assert "]: pending" in out or "]: delivered" in out  # routed to its roles now
