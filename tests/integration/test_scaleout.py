"""Several broker processes over one PostgreSQL: push across processes, jobs once, nothing lost.

Two real `liaison serve` processes on loopback share this machine's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.client.sender import SenderClient, SenderError
from broker.audit.verify import read_export, verify_export
from broker.crypto.keys import read_private_key
from broker.service.directory import apply_directory_file
from broker.store.engine import create_engine, migrate
from tests.conftest import NOW, fresh_pg_database
from tests.integration.test_adapters import Receiver, add_webhooks
from tests.support import free_port, recipient, run_cli, serve_process

pytestmark = pytest.mark.postgres
EXAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[2] / "policies/examples/returnee-repatriation.json"
    ).read_text()
)


@pytest.fixture
async def shared_db(demo_dir: Path) -> AsyncIterator[str]:
    async with fresh_pg_database("postgresql+asyncpg") as url:
        engine = create_engine(url)
        await migrate(engine)
        await apply_directory_file(
            engine, demo_dir / "directory.yaml", actor="test", now=NOW, max_bytes=10**7
        )
        await engine.dispose()
        yield url


def two_brokers(
    demo_dir: Path, url: str, stack: ExitStack, **env: str
) -> tuple[Any, str, Any, str]:
    environment = {"LIAISON_DATABASE_URL": url, **env}
    a, url_a = stack.enter_context(serve_process(demo_dir, env=environment))
    b, url_b = stack.enter_context(serve_process(demo_dir, env=environment))
    return a, url_a, b, url_b


def sender(demo_dir: Path, url: str, agency: str = "mk-mvr") -> SenderClient:
    pair = read_private_key(demo_dir / "keys" / f"{agency}.pem")
    return SenderClient.from_pem(url, pair.pem(), pair.key_id(agency), retries=0, timeout=10)


async def ready(url: str, key: str = "listener") -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            async with http.get(f"{url}/readyz") as response:
                body = await response.json()
                if response.status == 200 and body["checks"].get(key) == "listening":
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready")


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the state is filled by another task
            await asyncio.sleep(0.05)


async def outbox_rounds(metrics_port: int) -> int:
    """Rounds the outbox worker of the process with this metrics listener has finished."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response,
    ):
        text = await response.text()
    [line] = [x for x in text.splitlines() if x.startswith("liaison_outbox_rounds_total ")]
    return int(float(line.split()[1]))


async def test_a_notice_posted_through_one_process_is_pushed_by_the_other(
    demo_dir: Path, shared_db: str
) -> None:
    with ExitStack() as stack:
        _, url_a, _, url_b = two_brokers(demo_dir, shared_db, stack)
        await asyncio.gather(ready(url_a), ready(url_b))
        events: list[dict[str, Any]] = []
        async with recipient(demo_dir, url_b, "mk-kumanovo-pcve") as client:
            await client.token()

            async def watch() -> None:
                async for _, data in client.watch():
                    events.append(data)

            task = asyncio.create_task(watch())
            async with sender(demo_dir, url_a) as ministry:
                # The first notice may reach the stream from B's store, as its backlog when it
                # opens; once it has arrived the stream is live and past its backlog, so the
                # second can only come by B pushing what A committed.
                first = (await ministry.post_notice(EXAMPLE)).body["id"]
                await _until(lambda: len(events) >= 1)
                second = (await ministry.post_notice(EXAMPLE)).body["id"]
                await _until(lambda: len(events) >= 2)
            assert not task.done(), "the stream must stay open: one connection throughout"
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [e["notice_id"] for e in events] == [first, second]


async def test_concurrent_writers_keep_the_log_gapless_and_jobs_run_once(
    demo_dir: Path, shared_db: str
) -> None:
    receiver = Receiver()
    add_webhooks(demo_dir, {"mk-kumanovo-pcve": receiver.url})
    engine = create_engine(shared_db)
    await apply_directory_file(
        engine, demo_dir / "directory.yaml", actor="test", now=NOW, max_bytes=10**7
    )
    await receiver.start()
    try:
        with ExitStack() as stack:
            environment = {
                "LIAISON_DATABASE_URL": shared_db,
                "LIAISON_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "1",
            }
            metrics = [free_port(), free_port()]
            _, url_a = stack.enter_context(
                serve_process(
                    demo_dir, env={**environment, "LIAISON_METRICS_PORT": str(metrics[0])}
                )
            )
            _, url_b = stack.enter_context(
                serve_process(
                    demo_dir, env={**environment, "LIAISON_METRICS_PORT": str(metrics[1])}
                )
            )
            async with sender(demo_dir, url_a) as a, sender(demo_dir, url_b) as b:
                posted = await asyncio.gather(
                    *(client.post_notice(EXAMPLE) for client in [a, b] * 10)
                )
            ids = {p.body["id"] for p in posted}
            async with asyncio.timeout(20):
                while len(receiver.received) < len(ids):  # noqa: ASYNC110 - filled by the receiver
                    await asyncio.sleep(0.1)
            # A second send of a message would come from a round under way now or the next
            # one: wait until both processes have finished two more rounds each.
            seen = await asyncio.gather(*(outbox_rounds(port) for port in metrics))
            async with asyncio.timeout(20):
                while True:
                    now = await asyncio.gather(*(outbox_rounds(port) for port in metrics))
                    if all(n >= s + 2 for n, s in zip(now, seen, strict=True)):
                        break
                    await asyncio.sleep(0.1)
            assert receiver.in_flight == 0
            result = run_cli(
                "audit",
                "export",
                "--data",
                demo_dir,
                "--out",
                demo_dir / "audit.jsonl",
                env={"LIAISON_DATABASE_URL": shared_db},
            )
            assert result.returncode == 0, result.stderr
    finally:
        await receiver.stop()
        await engine.dispose()
    webhook_ids = [h["webhook-id"] for h, _, _ in receiver.received]
    assert len(webhook_ids) == len(set(webhook_ids)) == 20  # each call made once, by one process
    with (demo_dir / "audit.jsonl").open("rb") as f:
        header, lines = read_export(f)
        verdict = verify_export(header, lines)
    assert verdict.ok, verdict.message
    assert len(header["checkpoints"]) >= 2  # both processes signed, all consistent


async def test_one_process_killed_under_load_loses_nothing(demo_dir: Path, shared_db: str) -> None:
    with ExitStack() as stack:
        process_a, url_a, _, url_b = two_brokers(demo_dir, shared_db, stack)
        outcomes: dict[str, str | None] = {}  # idempotency key -> notice id (None: unknown outcome)

        a_answered = asyncio.Event()
        count = 150

        async def load(client: SenderClient, prefix: str) -> None:
            for i in range(count):
                key = f"{prefix}-{i}"
                try:
                    response = await client.post_notice(EXAMPLE, idempotency_key=key)
                    outcomes[key] = response.body["id"]
                except SenderError:
                    outcomes[key] = None
                if prefix == "a" and i == 20:
                    a_answered.set()

        async with sender(demo_dir, url_a) as a, sender(demo_dir, url_b) as b:
            load_a = asyncio.create_task(load(a, "a"))
            load_b = asyncio.create_task(load(b, "b"))
            await a_answered.wait()  # kill it in the middle of its load, however fast it has become
            os.kill(process_a.pid, signal.SIGKILL)
            await asyncio.gather(load_a, load_b)
            unknown = [k for k, v in outcomes.items() if v is None]
            for key in unknown:  # an unknown outcome is retried through the survivor, same key
                outcomes[key] = (await b.post_notice(EXAMPLE, idempotency_key=key)).body["id"]
        assert unknown, "the kill should have interrupted some requests"
        engine = create_engine(shared_db)
        async with engine.connect() as conn:
            from sqlalchemy import text

            stored = {
                r.key: r.notice_id
                for r in (await conn.execute(text("select key, notice_id from idempotency")))
            }
            notices = (await conn.execute(text("select count(*) from notice"))).scalar()
            bad = (
                await conn.execute(
                    text(
                        "select count(*) from notice n where (select count(*) from delivery d where d.notice_id = n.id) <> 2"
                    )
                )
            ).scalar()
        await engine.dispose()
    assert stored == outcomes  # every answer is stored, once, under its key
    assert notices == len(outcomes) == 2 * count and bad == 0


async def test_a_database_outage_answers_503_never_201_and_heals_by_itself(
    demo_dir: Path, shared_db: str
) -> None:
    from urllib.parse import urlsplit, urlunsplit

    from tests.support import TcpProxy, serve_off_loop

    parts = urlsplit(shared_db)
    proxy = TcpProxy(parts.port or 5432)
    await proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    async with (
        serve_off_loop(demo_dir, env={"LIAISON_DATABASE_URL": via_proxy}) as (_, url),
        sender(demo_dir, url) as ministry,
        aiohttp.ClientSession() as http,
    ):
        before = (await ministry.post_notice(EXAMPLE)).body["id"]
        await proxy.cut()
        with pytest.raises(SenderError) as caught:
            await ministry.post_notice(EXAMPLE, idempotency_key="during-outage")
        assert caught.value.status == 503 and caught.value.problem["code"] == "store_unavailable"
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 503
        await proxy.restore()
        after = None
        for _ in range(50):  # the pool reconnects by itself
            try:
                after = (await ministry.post_notice(EXAMPLE, idempotency_key="after-outage")).body[
                    "id"
                ]
                break
            except SenderError:
                await asyncio.sleep(0.2)
        assert after is not None
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 200
    await proxy.cut()
    engine = create_engine(shared_db)
    async with engine.connect() as conn:
        from sqlalchemy import text

        ids = {r[0] for r in await conn.execute(text("select id from notice"))}
        keys = {r[0] for r in await conn.execute(text("select key from idempotency"))}
    await engine.dispose()
    assert ids == {before, after} and "during-outage" not in keys
