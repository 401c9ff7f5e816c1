"""Clock skew and clock jumps, revocation between intake and delivery, and overload.

No one is let in by a clock out of step, a contact revoked after routing loses the notice at
once, and a flood of requests (oversized, bursty, idle) gets clean refusals while the broker
keeps serving.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import yaml

from adapters.recipient import RecipientError
from adapters.sender import SenderClient, SenderError
from broker.clock import FrozenClock
from broker.http.keys import ESCALATION
from tests.fault.harness import SCALE, BrokerProcess, Figures, drive, marker, notice, sender
from tests.integration.intake_support import example, running_broker
from tests.support import recipient, run_cli


async def test_an_agency_clock_out_of_step_is_refused_like_any_bad_signature(
    demo_dir: Path, figures: Figures
) -> None:
    url = f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
    async with running_broker(demo_dir, url) as broker:
        answers = {}
        for skew in (-3600, -301, 301, 3600, -200, 200):
            pair = broker.agency_key("mk-mvr")
            client = SenderClient.from_pem(
                broker.url,
                pair.pem(),
                pair.key_id("mk-mvr"),
                retries=0,
                clock=lambda skew=skew: datetime.now(UTC).timestamp() + skew,
            )
            async with client:
                try:
                    answers[skew] = (
                        await client.post_notice(example("returnee-repatriation"))
                    ).status
                except SenderError as e:
                    answers[skew] = (e.status, e.problem.get("code"))
            figures.bad_inputs += 1
    refused = (401, "authentication_failed")
    assert answers == {
        -3600: refused,
        -301: refused,
        301: refused,
        3600: refused,
        -200: 201,
        200: 201,
    }


async def test_a_jump_of_the_brokers_clock_expires_tokens_and_escalates_nothing_early(
    demo_dir: Path, figures: Figures
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    clock = FrozenClock(start)
    url = f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
    async with running_broker(demo_dir, url, clock=clock) as broker:
        async with broker.sender("mk-mvr", clock) as ministry:
            notice_id = (await ministry.post_notice(example("returnee-repatriation"))).body["id"]
        async with broker.recipient("mk-kumanovo-pcve", clock) as pcve:
            token = await pcve.token()

            async def inbox_with_old_token() -> int:
                headers = {"Authorization": f"Bearer {token}"}
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{broker.url}/v1/inbox", headers=headers) as response,
                ):
                    return response.status

            assert await inbox_with_old_token() == 200
            clock.set(start - timedelta(hours=2))  # the broker's clock jumps back
            figures.faults += 1
            assert await inbox_with_old_token() == 401  # a token "from the future" is not trusted
            assert (await broker.app[ESCALATION].tick(clock.now())).escalated == 0
            clock.set(start + timedelta(hours=1))  # and forward past the token's lifetime
            figures.faults += 1
            assert await inbox_with_old_token() == 401
            assert (await broker.app[ESCALATION].tick(clock.now())).escalated == 0  # 24 h deadline
            # a fresh sign-in on the broker's new time works, and the notice is there
            assert [i["notice_id"] for i in (await pcve.inbox())["items"]] == [notice_id]


async def test_a_contact_revoked_after_routing_loses_the_notice_at_once(
    demo_dir: Path, figures: Figures
) -> None:
    broker = BrokerProcess(demo_dir)
    broker.start()
    revision = (await broker.ready())["directory_revision"]
    try:
        async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
            mark = marker()
            notice_id = (
                await ministry.post_notice(notice("returnee-repatriation", mark, {}))
            ).body["id"]
        directory = yaml.safe_load((demo_dir / "directory.yaml").read_text())
        for assignment in directory["assignments"]:
            if assignment["contact"] == "mk-kumanovo-swc":
                assignment["until"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        (demo_dir / "directory.yaml").write_text(yaml.safe_dump(directory, allow_unicode=True))
        changed = run_cli("directory", "apply", demo_dir / "directory.yaml", "--data", demo_dir)
        assert changed.returncode == 0, changed.stderr
        figures.faults += 1
        # The running broker picks the new revision up on its own (it polls the store).
        await broker.ready(until=lambda body: body["directory_revision"] > revision)
        async with recipient(demo_dir, broker.url, "mk-kumanovo-swc") as swc:
            with pytest.raises(RecipientError) as caught:
                await swc.read(notice_id)
            assert caught.value.status in (401, 404)
        async with recipient(demo_dir, broker.url, "mk-kumanovo-pcve") as pcve:
            assert mark in (await pcve.read(notice_id)).notice["subject"]  # and verified
    finally:
        broker.stop()


async def test_overload_gets_clean_refusals_and_the_broker_keeps_serving(
    demo_dir: Path, figures: Figures
) -> None:
    broker = BrokerProcess(demo_dir)
    broker.start()
    mark = marker()
    idle: list[asyncio.StreamWriter] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{broker.url}/v1/notices",
                data=b"{" + b" " * 300_000 + b"}",
                headers={"Content-Type": "application/json"},
            ) as response:
                assert response.status == 413
                assert response.content_type == "application/problem+json"
            async with http.get(
                f"{broker.url}/healthz", headers={"X-Padding": "x" * 20_000}
            ) as response:
                assert response.status in (400, 431)
            async with http.get(  # within limits.max_header_bytes (16 KiB): the setting holds
                f"{broker.url}/healthz", headers={"X-Padding": "x" * 12_000}
            ) as response:
                assert response.status == 200
            figures.bad_inputs += 2
        for _ in range(200 * SCALE):  # many idle connections hold nothing up
            _, writer = await asyncio.open_connection("127.0.0.1", broker.port)
            idle.append(writer)
        figures.faults += 1
        ops = await drive(
            demo_dir, broker.url, count=60 * SCALE, marker=mark, seed=7, concurrency=30
        )  # a burst
        figures.add(ops)
        assert {op.outcome for op in ops} <= {"ok", "failed"}
        assert all(op.status in (None, 201, 503) for op in ops), {op.status for op in ops}
        assert sum(op.outcome == "ok" for op in ops) >= len(ops) // 2
        async with aiohttp.ClientSession() as http, http.get(f"{broker.url}/readyz") as response:
            assert response.status == 200
    finally:
        for writer in idle:
            writer.close()
        broker.stop()
    assert "Traceback" not in broker.output()


async def test_a_policy_changed_after_routing_governs_new_notices_and_access_at_once(
    demo_dir: Path, figures: Figures
) -> None:
    """Removing a recipient rule re-routes new notices only (each records its policy hash);
    a forbid on reading ends access to an earlier notice at once."""
    broker = BrokerProcess(demo_dir)
    broker.start()
    mark = marker()
    policies = demo_dir / "policies"

    async def reload() -> None:
        before = (await broker.ready())["policy_hash"]
        done = run_cli("policy", "reload", "--data", demo_dir)
        assert done.returncode == 0, done.stderr
        figures.faults += 1
        await broker.ready(until=lambda body: body["policy_hash"] != before)  # swapped in

    try:
        async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
            first = (await ministry.post_notice(notice("returnee-repatriation", mark, {}))).body
            channel = policies / "channels" / "returnee-repatriation.yaml"
            text = channel.read_text()
            rule = text[text.index("  - rule: municipal-social-welfare") : text.index("payload:")]
            channel.write_text(text.replace(rule, ""))
            await reload()
            second = (await ministry.post_notice(notice("returnee-repatriation", mark, {}))).body
        assert first["recipient_count"] == 2 and second["recipient_count"] == 1
        assert first["policy_hash"] != second["policy_hash"]
        async with recipient(demo_dir, broker.url, "mk-kumanovo-swc") as swc:
            assert mark in (await swc.read(first["id"])).notice["subject"]  # routed before
            with pytest.raises(RecipientError) as caught:
                await swc.read(second["id"])
            assert caught.value.status == 404
            (policies / "zz-fault.cedar").write_text(
                '@id("fault/no-welfare-reads-returnees")\n'
                "forbid (principal is Liaison::Contact, "
                'action == Liaison::Action::"read_notice", resource is Liaison::Notice)\n'
                'when { principal.role_kinds.contains("social-welfare-centre") };\n'
            )
            await reload()
            with pytest.raises(RecipientError) as caught:
                await swc.read(first["id"])
            assert caught.value.status == 404  # exactly like a notice that does not exist
        async with recipient(demo_dir, broker.url, "mk-kumanovo-pcve") as pcve:
            assert mark in (await pcve.read(first["id"])).notice["subject"]
    finally:
        broker.stop()
