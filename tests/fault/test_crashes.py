"""kill -9 under load: during intake, during fan-out to live streams, during audit appends.

Each test runs the broker as a real process on SQLite and on this machine's PostgreSQL, kills it
with SIGKILL in the middle of its work, restarts it on the same data, and checks the invariants
of ``tests/fault/harness.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.fault.conftest import Backend
from tests.fault.harness import (
    SCALE,
    BrokerProcess,
    Figures,
    check_invariants,
    drive,
    marker,
    post_one,
    rows,
    sender,
    settle_unknown,
    start_load,
    verify_audit,
)
from tests.support import recipient, run_cli


async def test_kill_9_during_intake_loses_nothing_and_doubles_nothing(
    backend: Backend, figures: Figures
) -> None:
    broker = BrokerProcess(backend.data, backend.env, figures)
    mark = marker()
    broker.start()
    try:
        load, answered = start_load(
            backend.data, broker.url, count=80 * SCALE, marker=mark, seed=1, after=15
        )
        for _ in range(SCALE):
            await answered.wait()
            assert not load.done(), "the kill must land in the middle of the load"
            broker.kill()
            figures.faults += 1
            await asyncio.to_thread(broker.start)
            answered.clear()
        ops = await load
        await broker.ready()
        unknown = {op.key for op in ops if op.outcome == "unknown"}
        assert unknown, "the kill should have cut some requests"
        settled = await settle_unknown(backend.data, broker.url, ops, mark)
    finally:
        broker.stop()
    figures.add(ops)
    await check_invariants(
        backend.data, backend.db_url, backend.env, settled, mark, figures, log_text=broker.output()
    )


async def test_kill_9_during_fan_out_a_resumed_stream_misses_nothing_and_repeats_nothing(
    backend: Backend, figures: Figures
) -> None:
    """Live clients of Kumanovo's roles watch while notices fan out; the broker is killed;
    each client resumes from its last event id and ends with every notice exactly once."""
    broker = BrokerProcess(backend.data, backend.env, figures)
    mark = marker()
    broker.start()
    contacts = ("mk-kumanovo-pcve", "mk-kumanovo-swc")
    seen: dict[str, list[int]] = {c: [] for c in contacts}
    last: dict[str, int | None] = dict.fromkeys(contacts)

    async def watch(contact: str) -> None:
        while True:  # a careful client: reconnect and resume after every drop
            try:
                async with recipient(backend.data, broker.url, contact) as client:
                    async for event_id, _ in client.watch(last_event_id=last[contact]):
                        seen[contact].append(event_id)
                        last[contact] = event_id
            except Exception:  # any drop (reset, refused, 5xx while restarting): resume
                await asyncio.sleep(0.2)

    watchers = [asyncio.create_task(watch(c)) for c in contacts]
    try:
        # A first notice for both contacts, before the load: once each watcher has it, its
        # stream is open and live, so the kill below interrupts streams that must resume.
        async with sender(backend.data, broker.url, "mk-mvr") as ministry:
            first = await post_one(ministry, "first", "mk-mvr", "returnee-repatriation", mark)
        assert first.outcome == "ok", first
        async with asyncio.timeout(30):
            while not all(seen[c] for c in contacts):  # noqa: ASYNC110 - filled by the watchers
                await asyncio.sleep(0.05)
        load, answered = start_load(
            backend.data, broker.url, count=60 * SCALE, marker=mark, seed=2, after=8
        )
        await answered.wait()
        assert not load.done(), "the kill must land in the middle of the load"
        broker.kill()
        figures.faults += 1
        await asyncio.to_thread(broker.start)
        ops = await load
        await broker.ready()
        ops = [first, *await settle_unknown(backend.data, broker.url, ops, mark)]
        expected = await _delivery_ids(backend, contacts)
        try:
            async with asyncio.timeout(30):
                while any(sorted(set(seen[c])) != expected[c] for c in contacts):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
        except TimeoutError:
            gaps = {c: sorted(set(expected[c]) - set(seen[c]))[:10] for c in contacts}
            raise AssertionError(f"the resumed streams never caught up; missing {gaps}") from None
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        broker.stop()
    figures.add(ops)
    for c in contacts:
        assert seen[c] == expected[c], f"{c}: a gap or a repeat in the resumed stream"
    await check_invariants(
        backend.data, backend.db_url, backend.env, ops, mark, figures, log_text=broker.output()
    )


async def _delivery_ids(backend: Backend, contacts: tuple[str, ...]) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {c: [] for c in contacts}
    for r in await rows(backend.db_url, "select id, contact_id from delivery order by id"):
        if r.contact_id in result:
            result[r.contact_id].append(int(r.id))
    return result


async def test_kill_9_during_audit_appends_leaves_a_gapless_verifiable_log(
    backend: Backend, figures: Figures
) -> None:
    """Token requests, refusals and audit reads each append events; SIGKILL lands among them."""
    broker = BrokerProcess(backend.data, backend.env, figures)
    broker.start()
    stop = asyncio.Event()
    done = 0

    async def hammer(contact: str, auditor: bool) -> None:
        nonlocal done
        while not stop.is_set():
            try:
                async with recipient(backend.data, broker.url, contact) as client:
                    await client.token()
                    if auditor:
                        await client.audit_checkpoint(fresh=True)
                    else:
                        await client.inbox()
                    done += 1
            except Exception:  # the broker is being killed under us: try again
                await asyncio.sleep(0.05)

    auditor = _auditor(backend.data)
    tasks = [
        asyncio.create_task(hammer(c, c == auditor)) for c in ("mk-kumanovo-pcve", auditor) * 3
    ]
    try:
        for _ in range(2 * SCALE):
            start = done
            async with asyncio.timeout(30):
                while done < start + 10:  # noqa: ASYNC110 - counted by the hammer tasks
                    await asyncio.sleep(0.02)
            broker.kill()
            figures.faults += 1
            await asyncio.to_thread(broker.start)
        await broker.ready()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        broker.stop()
    figures.operations += done
    figures.outcomes["ok"] += done
    verify_audit(backend.data, backend.env)


def _answered(receiver: Any, script: list[str]) -> int:
    """How many requests the receiver has begun to answer (each takes the next scripted answer)."""
    return len(script) - len(receiver.script)


def _landed(receiver: Any, answer: str) -> int:
    """How many requests given ``answer`` have been received in full."""
    return sum(1 for _, _, given in receiver.received if given == answer)


def _still_answering(receiver: Any, script: list[str]) -> bool:
    """A request is in the receiver's hands, or a hanging call it began has not landed yet."""
    hangs_begun = script[: _answered(receiver, script)].count("hang")
    return bool(receiver.in_flight) or _landed(receiver, "hang") < hangs_begun


def _auditor(data: Path) -> str:
    assert (data / "keys" / "mk-ombudsman-auditor.pem").exists()
    return "mk-ombudsman-auditor"


async def test_webhooks_through_a_failing_receiver_and_a_kill_arrive_once_each(
    demo_dir: Path, figures: Figures
) -> None:
    """The receiver refuses, errors, hangs and comes back; the broker is killed mid-retries.
    Every delivery's webhook arrives, under one webhook-id, however often it was sent."""
    from tests.integration.test_adapters import SECRET, Receiver, add_webhooks

    script = ["500", "503", "hang", "500"] * SCALE
    flaky = Receiver(script)
    add_webhooks(
        demo_dir,
        {"mk-kumanovo-pcve": f"{flaky.url}|env:WH_SECRET", "mk-kumanovo-swc": flaky.url},
    )
    assert (
        run_cli("directory", "apply", demo_dir / "directory.yaml", "--data", demo_dir).returncode
        == 0
    )
    env = {
        "WH_SECRET": SECRET,
        "LIAISON_WEBHOOKS_TIMEOUT_SECONDS": "1",
        "LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1",
        "LIAISON_WEBHOOKS_MAX_BACKOFF_SECONDS": "2",
        "LIAISON_WEBHOOKS_MAX_ATTEMPTS": "30",
    }
    broker = BrokerProcess(demo_dir, env)
    broker.start()
    mark = marker()
    db = f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
    try:
        ops = await drive(demo_dir, broker.url, count=20 * SCALE, marker=mark, seed=8)
        figures.faults += 1  # connections refused until the receiver starts
        async with asyncio.timeout(30):  # until every message has met the refusal at least once
            while True:
                tried = await rows(db, "select count(*) as n, min(attempts) as least from outbox")
                if tried[0].n > 0 and tried[0].least >= 1:
                    break
                await asyncio.sleep(0.1)
        await flaky.start()
        async with asyncio.timeout(30):  # until the first hanging call is under way
            while not (_answered(flaky, script) >= 3 and _landed(flaky, "hang") == 0):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        broker.kill()  # in the middle of retries and the hanging call
        figures.faults += 1
        await asyncio.to_thread(broker.start)
        async with asyncio.timeout(60):
            while True:
                pending = await rows(db, "select count(*) as n from outbox where state != 'sent'")
                if pending[0].n == 0:
                    break
                await asyncio.sleep(0.5)
        async with asyncio.timeout(30):  # every abandoned hanging call has landed
            while _still_answering(flaky, script):  # noqa: ASYNC110 - the receiver's state
                await asyncio.sleep(0.1)
        sent = await rows(db, "select notice_id, target, msg_id from outbox")
    finally:
        broker.stop()
        await flaky.stop()
    figures.add(ops)
    ok = {op.notice_id for op in ops if op.outcome == "ok"}
    returnees = {r.notice_id for r in sent}
    assert returnees <= ok
    delivered = set(flaky.delivered_ids())
    expected = {r.msg_id for r in sent}
    assert delivered == expected, "a webhook lost, or one under an id nobody issued"
    ids_per_message = {}
    for headers, body, _ in flaky.received:
        payload = json.loads(body)
        key = (payload["data"]["notice_id"], headers["webhook-id"])
        ids_per_message.setdefault(key[0], set()).add(key[1])
    # at most one id per (notice, hook): two hooks per returnee notice, so at most two per notice
    assert all(len(v) <= 2 for v in ids_per_message.values())
    await check_invariants(demo_dir, db, {}, ops, mark, figures, log_text=broker.output())
