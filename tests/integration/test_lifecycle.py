"""A broker operators can run (issue 19): safe control, start and wait, honest readiness,
outage logs, workers that restart, a checkpoint at every start. Real `liaison serve` processes,
real SQLite files, this machine's PostgreSQL (behind a proxy the test opens; never stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from adapters.client.sender import SenderClient, SenderError
from broker.crypto.keys import read_private_key
from tests.support import TcpProxy, free_port, output, run_cli, serve_off_loop, serve_process

EXAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[2] / "policies/examples/returnee-repatriation.json"
    ).read_text()
)


def _sender(data: Path, url: str, agency: str = "mk-mvr") -> SenderClient:
    pair = read_private_key(data / "keys" / f"{agency}.pem")
    return SenderClient.from_pem(url, pair.pem(), pair.key_id(agency), retries=0, timeout=10)


def _wait_until(predicate: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


async def _ready(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{url}/readyz") as response:
        return response.status, await response.json(content_type=None)


# -- 1. safe control ------------------------------------------------------------------------


@contextlib.contextmanager
def _unrelated_process() -> Iterator[subprocess.Popen[bytes]]:
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        yield sleeper
    finally:
        sleeper.kill()
        sleeper.wait()


def test_reload_with_a_stale_pid_file_naming_another_process_refuses_and_leaves_it_alive(
    demo_dir: Path,
) -> None:
    with _unrelated_process() as sleeper:
        run_dir = demo_dir / "run"
        run_dir.mkdir(mode=0o700, exist_ok=True)
        pid_file = run_dir / "liaison-8750.pid"
        pid_file.write_text(f"{sleeper.pid}\n")  # as a broker killed with -9 leaves it
        result = run_cli("policy", "reload", "--data", demo_dir)
        time.sleep(0.2)
        assert sleeper.poll() is None  # never signalled
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "no running broker" in result.stderr and "stale" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not pid_file.exists()  # detected and removed


def test_reload_reaches_the_broker_over_a_private_socket_and_believes_only_that_broker(
    demo_dir: Path,
) -> None:
    with serve_process(demo_dir) as (proc, url), _unrelated_process() as sleeper:
        port = url.rsplit(":", 1)[1]
        run_dir, sock = demo_dir / "run", demo_dir / "run" / f"liaison-{port}.sock"
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
        accepted = run_cli("policy", "reload", "--data", demo_dir)
        assert accepted.returncode == 0, accepted.stderr
        assert f"broker process(es) {proc.pid} (sha256:" in accepted.stdout
        # A pid file edited to name another process: the socket's peer is not that process.
        pid_file = run_dir / f"liaison-{port}.pid"
        pid_file.write_text(f"{sleeper.pid}\n")
        refused = run_cli("policy", "reload", "--data", demo_dir)
        assert refused.returncode == 1 and "not the broker" in refused.stderr
        assert sleeper.poll() is None and proc.poll() is None
        assert sock.exists()  # a live broker's socket is never taken for stale


def test_a_second_serve_on_a_busy_port_fails_before_touching_anything(demo_dir: Path) -> None:
    with serve_process(demo_dir) as (proc, url):
        port = url.rsplit(":", 1)[1]
        pid_file = demo_dir / "run" / f"liaison-{port}.pid"
        sock = demo_dir / "run" / f"liaison-{port}.sock"
        before = (pid_file.read_text(), pid_file.stat().st_ino, sock.stat().st_ino)
        second = run_cli("serve", "--data", demo_dir, "--port", port, timeout=60)
        assert second.returncode == 1
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "already in use" in lines[0], second.stderr
        assert "listening" not in second.stderr and "Traceback" not in second.stderr
        assert (pid_file.read_text(), pid_file.stat().st_ino, sock.stat().st_ino) == before
        assert run_cli("policy", "reload", "--data", demo_dir).returncode == 0
        assert proc.poll() is None


# -- 2. start and wait ----------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_broker_started_with_postgresql_down_answers_503_then_becomes_ready(
    demo_dir: Path,
) -> None:
    from urllib.parse import urlsplit, urlunsplit

    from tests.conftest import fresh_pg_database

    async with fresh_pg_database("postgresql+asyncpg") as db_url:
        await _with_directory(db_url, demo_dir)
        parts = urlsplit(db_url)
        proxy = TcpProxy(parts.port or 5432)  # not started: nothing listens on its port yet
        via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        env = {"LIAISON_DATABASE_URL": via_proxy}
        async with (
            serve_off_loop(demo_dir, env=env) as (proc, url),
            aiohttp.ClientSession() as http,
            _sender(demo_dir, url) as ministry,
        ):
            await asyncio.sleep(2)  # a few failed attempts, each one retried
            status, body = await _ready(http, url)
            assert status == 503 and any("database_down" in r for r in body["reasons"])
            with pytest.raises(SenderError) as caught:
                await ministry.post_notice(EXAMPLE)
            assert caught.value.status == 503
            assert caught.value.problem["code"] == "store_unavailable"
            assert proc.poll() is None and "listening" not in output(proc)
            await proxy.start()
            opened = time.monotonic()
            while (await _ready(http, url))[0] != 200:
                assert time.monotonic() - opened < 30, output(proc)[-2000:]
                await asyncio.sleep(0.1)
            ready_after = time.monotonic() - opened
            assert (await ministry.post_notice(EXAMPLE)).status == 201
            assert "listening" in output(proc)
        await proxy.cut()
    events = _events(output(proc))
    waiting = [e for e in events if e["event"] == "store_unavailable"]
    assert waiting and all(e["level"] == "warning" for e in waiting)
    assert waiting[0]["cause"] == "database_down" and len(waiting) <= 2  # per change, not per try
    refused = [e["reason"] for e in events if e["event"] == "request_refused"]
    assert refused and all("database_down" in r for r in refused)  # the cause, never null
    print(f"\nstore came up -> broker ready: {ready_after:.2f} s")


async def _with_directory(db_url: str, data: Path) -> None:
    from broker.service.directory import apply_directory_file
    from broker.store.engine import create_engine, migrate
    from tests.conftest import NOW

    engine = create_engine(db_url)
    await migrate(engine)
    await apply_directory_file(
        engine, data / "directory.yaml", actor="test", now=NOW, max_bytes=10**7
    )
    await engine.dispose()


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# -- 3. honest readiness, 4. outage logs ----------------------------------------------------


@contextlib.contextmanager
def _all_logs() -> Iterator[list[dict[str, Any]]]:
    """Every event at every level (an earlier test may have set a level filter), captured."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


@contextlib.contextmanager
def _small_disk(megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes``; skipped where this machine cannot mount one."""
    mount = Path(tempfile.mkdtemp(prefix="liaison-full-disk-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        # Lazy: a failed test may still hold the database open; the mount goes once it closes.
        subprocess.run(["umount", "-l", str(mount)], check=False)
        with contextlib.suppress(OSError):
            mount.rmdir()


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as sink, contextlib.suppress(OSError):
        while True:
            sink.write(b"\0" * 65536)
            sink.flush()
    return filler


async def test_readyz_is_false_on_a_full_disk_and_the_outage_is_one_warning_with_its_cause(
    demo_dir: Path,
) -> None:
    from tests.integration.intake_support import running_broker

    env = {"LIAISON_DATABASE_MIN_FREE_BYTES": str(1024 * 1024)}
    with _small_disk(24) as disk, _all_logs() as logs:
        database = f"sqlite+aiosqlite:///{disk / 'liaison.db'}"
        async with (
            running_broker(demo_dir, database, env=env) as broker,
            aiohttp.ClientSession() as http,
            broker.sender("mk-mvr") as ministry,
        ):
            assert (await _ready(http, broker.url))[0] == 200
            await ministry.post_notice(EXAMPLE)
            filler = _fill(disk)
            status, body = await _ready(http, broker.url)
            assert status == 503 and body["checks"]["database"] == "cannot write"
            assert any(r.startswith("disk_full:") for r in body["reasons"]), body
            refused = 0
            for n in range(5):
                with contextlib.suppress(SenderError):
                    await ministry.post_notice(EXAMPLE, idempotency_key=f"full-{n}")
                    continue
                refused += 1
            filler.unlink()
            assert (await ministry.post_notice(EXAMPLE, idempotency_key="room")).status == 201
            assert (await _ready(http, broker.url))[0] == 200
    outages = [e for e in logs if e["event"] == "store_unavailable"]
    assert refused == 5 and len(outages) == 1, outages
    assert outages[0]["cause"] == "disk_full" and outages[0]["log_level"] == "warning"
    assert [e["was"] for e in logs if e["event"] == "store_recovered"] == ["disk_full"]
    reasons = [e["reason"] for e in logs if e["event"] == "request_refused"]
    assert reasons and all(r.startswith("disk_full") for r in reasons)  # never null


async def test_readyz_is_false_below_the_free_space_setting(demo_dir: Path) -> None:
    from tests.integration.intake_support import running_broker

    database = f"sqlite+aiosqlite:///{demo_dir / 'space.db'}"
    stats = os.statvfs(demo_dir)
    env = {"LIAISON_DATABASE_MIN_FREE_BYTES": str(stats.f_bavail * stats.f_frsize * 2)}
    async with (
        running_broker(demo_dir, database, env=env) as broker,
        aiohttp.ClientSession() as http,
    ):
        status, body = await _ready(http, broker.url)
    assert status == 503
    assert any("below database.min_free_bytes" in r for r in body["reasons"]), body


# -- 4. workers that restart ----------------------------------------------------------------


async def test_a_worker_that_raises_is_logged_restarted_and_shown_in_metrics(
    demo_dir: Path,
) -> None:
    from broker.http.keys import SHREDDER
    from tests.integration.intake_support import running_broker

    port = free_port()
    env = {"LIAISON_METRICS_PORT": str(port), "LIAISON_RETENTION_SHRED_INTERVAL_SECONDS": "1"}
    database = f"sqlite+aiosqlite:///{demo_dir / 'w.db'}"
    with _all_logs() as logs:
        async with running_broker(demo_dir, database, env=env) as broker:
            shredder = broker.app[SHREDDER]
            real, calls = shredder.tick, []

            async def broken_twice(now: Any) -> Any:  # the test hook: a worker that raises
                calls.append(now)
                if len(calls) <= 2:
                    raise RuntimeError("injected failure")
                return await real(now)

            shredder.tick = broken_twice  # type: ignore[method-assign]
            metrics = await _metrics_when(port, '_state="running",worker="retention"} 1.0', calls)
    assert len(calls) >= 3
    assert 'liaison_worker_failures_total{worker="retention"}' in metrics
    assert 'liaison_worker_state{liaison_worker_state="running",worker="checkpoint"} 1.0' in metrics
    assert "liaison_worker_last_success_timestamp_seconds" in metrics
    assert 'liaison_store_state{liaison_store_state="available"} 1.0' in metrics
    failed = [e for e in logs if e["event"] == "worker_failed" and e["worker"] == "retention"]
    assert [e["failures"] for e in failed][:2] == [1, 2] and failed[0]["log_level"] == "warning"
    assert isinstance(failed[0]["exc_info"], RuntimeError)
    assert any(e["event"] == "worker_recovered" for e in logs)


async def _metrics_when(port: int, needle: str, calls: list[Any]) -> str:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            if len(calls) >= 3 and needle in text:
                return text
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.2)


# -- 5. a checkpoint at start ---------------------------------------------------------------


def _audit(data: Path) -> tuple[int, int]:
    """(events in the log, size of the newest signed checkpoint)."""
    with contextlib.closing(sqlite3.connect(data / "liaison.db")) as db:
        events = db.execute("SELECT count(*) FROM audit_event").fetchone()[0]
        signed = db.execute("SELECT coalesce(max(size), 0) FROM audit_checkpoint").fetchone()[0]
    return int(events), int(signed)


async def test_a_checkpoint_covering_the_posts_is_signed_within_seconds_of_a_restart(
    demo_dir: Path,
) -> None:
    env = {"LIAISON_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "3600"}  # the interval cannot do it
    with ExitStack() as stack:
        _, url = await asyncio.to_thread(stack.enter_context, serve_process(demo_dir, env=env))
        async with _sender(demo_dir, url) as ministry:
            for n in range(3):
                await ministry.post_notice(EXAMPLE, idempotency_key=f"before-restart-{n}")
    events, signed = _audit(demo_dir)
    assert signed < events  # the posts are not signed yet
    with serve_process(demo_dir, env=env):
        started = time.monotonic()
        assert await asyncio.to_thread(_wait_until, lambda: _audit(demo_dir)[1] >= events, 10)
        print(f"\nrestart -> checkpoint over {events} events: {time.monotonic() - started:.2f} s")
