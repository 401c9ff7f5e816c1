"""`liaison serve --workers 2`: two worker processes on one port, over one SQLite file or one
PostgreSQL database.

Which worker takes a connection is the kernel's choice; to make it the test's, a worker is
paused (SIGSTOP) while the other accepts: a paused process cannot accept, so the connection
goes to the running one. Only idle moments are paused (no request of the test in flight).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from adapters.client.sender import SenderClient
from broker.crypto.keys import read_private_key
from broker.service.directory import apply_directory_file
from broker.store.engine import create_engine, migrate
from tests.conftest import NOW, fresh_pg_database
from tests.integration.test_adapters import Receiver, add_webhooks
from tests.support import output, recipient, run_cli, serve_process

EXAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[2] / "policies/examples/returnee-repatriation.json"
    ).read_text()
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, demo_dir: Path) -> AsyncIterator[dict[str, str]]:
    """The environment that points both workers at the store: the data directory's SQLite
    file, or a fresh PostgreSQL database with the demo directory applied."""
    if request.param == "sqlite":
        yield {}
        return
    async with fresh_pg_database("postgresql+asyncpg") as url:
        engine = create_engine(url)
        await migrate(engine)
        await apply_directory_file(
            engine, demo_dir / "directory.yaml", actor="test", now=NOW, max_bytes=10**7
        )
        await engine.dispose()
        yield {"LIAISON_DATABASE_URL": url}


def log_events(proc: Any, name: str) -> list[dict[str, Any]]:
    found = []
    for line in output(proc).splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            found.append(event)
    return found


def workers(proc: Any) -> dict[int, int]:
    """Worker number -> pid of its newest start."""
    [first] = log_events(proc, "workers_started")
    pids = dict(enumerate(first["pids"]))
    return pids | {e["worker"]: e["pid"] for e in log_events(proc, "worker_started")}


async def until(condition: Callable[[], bool], seconds: float = 30, proc: Any = None) -> None:
    """Wait for ``condition``; past ``seconds`` fail, with the tail of ``proc``'s log if given."""
    try:
        async with asyncio.timeout(seconds):
            while not condition():  # noqa: ASYNC110 - filled by another process or task
                await asyncio.sleep(0.05)
    except TimeoutError:
        if proc is None:
            raise
        tail = "\n".join(output(proc).splitlines()[-40:])
        raise AssertionError(f"not within {seconds} s; the broker's log ends:\n{tail}") from None


async def started(proc: Any) -> dict[int, int]:
    await until(lambda: "with 2 workers" in output(proc), 60, proc)
    return workers(proc)


@contextmanager
def paused(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def post(demo_dir: Path, url: str, count: int = 1) -> list[str]:
    """``count`` notices through one new connection."""
    pair = read_private_key(demo_dir / "keys" / "mk-mvr.pem")
    async with SenderClient.from_pem(
        url, pair.pem(), pair.key_id("mk-mvr"), retries=0, timeout=30
    ) as client:
        return [(await client.post_notice(EXAMPLE)).body["id"] for _ in range(count)]


async def read_stream(response: aiohttp.ClientResponse, events: list[tuple[int, str]]) -> None:
    event_id = None
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: ") and event_id is not None:
            events.append((event_id, json.loads(line[6:])["notice_id"]))


async def stored(demo_dir: Path, env: dict[str, str]) -> tuple[int, int]:
    """(notices, notices without exactly two deliveries) in the store."""
    url = env.get("LIAISON_DATABASE_URL") or f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            notices = (await conn.execute(text("select count(*) from notice"))).scalar()
            bad = (
                await conn.execute(
                    text(
                        "select count(*) from notice n where "
                        "(select count(*) from delivery d where d.notice_id = n.id) <> 2"
                    )
                )
            ).scalar()
    finally:
        await engine.dispose()
    return int(notices or 0), int(bad or 0)


async def test_two_workers_share_intake_the_audit_chain_push_and_policy_reload(
    demo_dir: Path, store: dict[str, str], tmp_path: Path
) -> None:
    with serve_process(demo_dir, env=store, workers=2) as (proc, url):
        pids = await started(proc)
        events: list[tuple[int, str]] = []
        async with (
            recipient(demo_dir, url, "mk-kumanovo-pcve") as client,
            aiohttp.ClientSession() as http,
        ):
            headers = {"Authorization": f"Bearer {await client.token()}"}
            with paused(pids[0]):  # the stream is worker 1's
                response = await http.get(
                    f"{url}/v1/stream",
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=120),
                )
            assert response.status == 200
            reader = asyncio.create_task(read_stream(response, events))
            with paused(pids[1]):  # committed by worker 0 while worker 1 cannot even run
                by_0 = await post(demo_dir, url)
            await until(
                lambda: len(events) == 1, proc=proc
            )  # ... and pushed by worker 1 once it runs
            assert [n for _, n in events] == by_0
            with paused(pids[0]):
                by_1 = await post(demo_dir, url)  # committed by worker 1, its own stream
            # Both at once: two processes appending to one audit chain, one SQLite file.
            together = await asyncio.gather(*(post(demo_dir, url, 5) for _ in range(4)))
            posted = by_0 + by_1 + [n for batch in together for n in batch]
            await until(lambda: len(events) == len(posted), proc=proc)
            assert not reader.done(), "one connection throughout"
            reader.cancel()
            response.close()
        ids = [i for i, _ in events]
        assert sorted(n for _, n in events) == sorted(posted) and ids == sorted(set(ids))
        os.kill(proc.pid, signal.SIGHUP)  # what a service manager's reload sends
        await until(
            lambda: {e.get("worker") for e in log_events(proc, "policy_reloaded")} == {0, 1},
            proc=proc,
        )
        # `liaison policy reload` reaches worker 0 over its control socket, and every worker
        # through it: worker 0 asks the supervisor to pass SIGHUP on.
        before = len(log_events(proc, "policy_reloaded"))
        reloaded = await asyncio.to_thread(
            run_cli, "policy", "reload", "--data", demo_dir, env=store
        )
        assert reloaded.returncode == 0, reloaded.stderr
        await until(
            lambda: (
                {e.get("worker") for e in log_events(proc, "policy_reloaded")[before:]} == {0, 1}
            ),
            proc=proc,
        )
        handled = {
            e.get("worker")
            for e in log_events(proc, "request_handled")
            if e.get("path") == "/v1/notices" and e.get("status") == 201
        }
        assert handled == {0, 1}
    assert await stored(demo_dir, store) == (len(posted), 0)  # none lost, none twice
    export = tmp_path / "audit.jsonl"
    exported = run_cli("audit", "export", "--data", demo_dir, "--out", export, env=store)
    assert exported.returncode == 0, exported.stderr
    verified = run_cli("audit", "verify", export)
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_a_killed_worker_is_replaced_and_broker_wide_jobs_run_once(
    demo_dir: Path, store: dict[str, str]
) -> None:
    receiver = Receiver()
    add_webhooks(demo_dir, {"mk-kumanovo-pcve": receiver.url})
    applied = run_cli(
        "directory", "apply", demo_dir / "directory.yaml", "--data", demo_dir, env=store
    )
    assert applied.returncode == 0, applied.stderr
    await receiver.start()
    try:
        with serve_process(demo_dir, env=store, workers=2) as (proc, url):
            pids = await started(proc)
            os.kill(pids[0], signal.SIGKILL)  # the one that runs the outbox, among others
            await until(lambda: workers(proc)[0] != pids[0], proc=proc)
            [gone] = log_events(proc, "worker_exited")
            assert gone["worker"] == 0 and gone["status"] == -signal.SIGKILL
            with paused(pids[1]):  # only the new worker 0 can take it
                posted = await post(demo_dir, url)
            together = await asyncio.gather(*(post(demo_dir, url, 3) for _ in range(3)))
            posted += [n for batch in together for n in batch]
            await until(lambda: len(receiver.received) >= len(posted), proc=proc)
            await asyncio.sleep(3)  # three more outbox rounds: a second sender would send again
    finally:
        await receiver.stop()
    sent = [h["webhook-id"] for h, _, _ in receiver.received]
    assert len(sent) == len(set(sent)) == len(posted)  # each once, by one process
    # the worker that was never killed was never a second runner of the broker-wide jobs
    assert {e["worker"] for e in log_events(proc, "background_jobs") if e["broker_wide"]} == {0}


def test_a_worker_that_cannot_start_stops_the_broker_with_its_error(demo_dir: Path) -> None:
    guards = demo_dir / "policies" / "guards.cedar"
    guards.write_text(guards.read_text().replace("unless {", "unless ((", 1))
    result = run_cli("serve", "--data", demo_dir, "--port", "0", "--workers", "2", timeout=60)
    assert result.returncode == 1
    assert "policies/guards.cedar:" in result.stderr and "Cedar syntax" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("liaison: ") == 1 and "worker" not in result.stderr  # none retried
    assert not list((demo_dir / "run").glob("*.pid"))
