"""Clock skew and clock jumps, revocation between intake and delivery, and overload.

No one is let in by a clock out of step, a contact revoked after routing loses the notice at
once, and a flood of requests (oversized, bursty, idle) gets clean refusals while the broker
keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import yaml

from adapters.client.errors import RecipientError
from adapters.client.sender import SenderClient, SenderError
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
        changed = run_cli(
            "directory", "apply", demo_dir / "directory.yaml", "--data", demo_dir, "--force"
        )  # the vacancy is the point: apply warns and, told, applies
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
                assert response.status == 431
                assert response.content_type == "application/problem+json"
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


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _events(response: aiohttp.ClientResponse, into: list[int]) -> None:
    async for line in response.content:
        if line.startswith(b"id: "):
            into.append(int(line[4:]))


async def test_a_stream_client_that_stops_reading_holds_no_one_up_and_loses_nothing(
    demo_dir: Path, figures: Figures
) -> None:
    """Kumanovo's focal point opens a stream and stops reading (its client buffers 1 KiB at
    most); the social-welfare centre reads along. A burst of notices for both: the reader has
    every one, the broker's memory stays bounded, and the stalled client, reading again and
    then resuming from its last id, ends with every one exactly once, in order."""
    broker = BrokerProcess(demo_dir, {"LIAISON_DELIVERY_STREAM_QUEUE_EVENTS": "4"})
    broker.start()
    mark = marker()
    assert broker.proc is not None
    try:
        async with (
            recipient(demo_dir, broker.url, "mk-kumanovo-pcve") as pcve,
            recipient(demo_dir, broker.url, "mk-kumanovo-swc") as swc,
            aiohttp.ClientSession(read_bufsize=1024) as stalled_http,
        ):
            headers = {"Accept": "text/event-stream"}
            stalled = await stalled_http.get(
                f"{broker.url}/v1/stream",
                headers={**headers, "Authorization": f"Bearer {await pcve.token()}"},
            )
            read: list[int] = []

            async def keep_reading() -> None:
                while True:  # a reader that falls behind its 4-event queue is let go: resume
                    with contextlib.suppress(aiohttp.ClientError):
                        async for event_id, _ in swc.watch(
                            last_event_id=read[-1] if read else None
                        ):
                            read.append(event_id)

            reading = asyncio.create_task(keep_reading())
            before = _rss_mib(broker.proc.pid)
            figures.faults += 1
            ops = [
                op
                for op in await drive(
                    demo_dir, broker.url, count=150 * SCALE, marker=mark, seed=9, prefix="burst"
                )
                if op.agency == "mk-mvr"  # the returnee notices: the ones for Kumanovo
            ]
            figures.add(ops)
            assert all(op.outcome == "ok" for op in ops)
            async with asyncio.timeout(30):
                while len(read) < len(ops):  # noqa: ASYNC110 - filled by the reading task
                    await asyncio.sleep(0.05)
            growth = _rss_mib(broker.proc.pid) - before
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            got: list[int] = []
            with contextlib.suppress(TimeoutError):  # what it was sent before the broker let go
                async with asyncio.timeout(3):
                    await _events(stalled, got)
            stalled.close()
            async with asyncio.timeout(30):  # resume from the last id it has
                async for event_id, _ in pcve.watch(last_event_id=got[-1] if got else None):
                    got.append(event_id)
                    if len(got) >= len(ops):
                        break
    finally:
        broker.stop()
    assert len(read) == len(ops) and read == sorted(set(read))
    assert len(got) == len(ops) and got == sorted(set(got)), "a gap or a repeat after resuming"
    assert growth < 50, f"the broker grew by {growth:.0f} MiB for one stalled client"
