"""Outages under load: PostgreSQL stopped hard and restarted, the data directory's disk full.

During the fault the broker must fail closed (503 or 507 problem documents, never a 201 for
something not durable); after it, it must recover by itself and every invariant must hold.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci import cannot_run_here
from tests.fault.conftest import Backend
from tests.fault.harness import (
    SCALE,
    BrokerProcess,
    Figures,
    check_invariants,
    drive,
    marker,
    settle_unknown,
    start_load,
)

CLUSTERS = Path("/etc/postgresql")


def _pg_ctl(action: str, *extra: str) -> None:
    version = sorted(p.name for p in CLUSTERS.iterdir())[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *extra],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _pg_ready() -> bool:
    return (
        subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False, timeout=10).returncode
        == 0
    )


@pytest.mark.postgres
async def test_postgresql_stopped_hard_and_restarted_under_load(
    pg_backend: Backend, figures: Figures
) -> None:
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0 or not CLUSTERS.is_dir():
        cannot_run_here("needs this machine's PostgreSQL cluster and root to stop and start it")
    data, env = pg_backend.data, pg_backend.env
    broker = BrokerProcess(data, env, figures)
    broker.start()
    mark = marker()
    try:
        load, answered = start_load(
            data, broker.url, count=60 * SCALE, marker=mark, seed=3, after=10, concurrency=4
        )
        await answered.wait()
        try:
            await asyncio.to_thread(_pg_ctl, "stop", "-m", "immediate")  # a crash: no checkpoint
            figures.faults += 1
            await asyncio.sleep(2)  # requests meet the outage
        finally:
            await asyncio.to_thread(_pg_ctl, "start")
            for _ in range(60):
                if await asyncio.to_thread(_pg_ready):
                    break
                await asyncio.sleep(0.5)
            outage_end = time.monotonic()
        ops = await load
        figures.first_201_after(ops, outage_end)
        await broker.ready()
        settled = await settle_unknown(data, broker.url, ops, mark)
        for op in settled:  # what the outage refused, it refused cleanly: 503, nothing kept
            if op.outcome == "failed":
                assert op.status == 503, op
    finally:
        broker.stop()
    figures.add(ops)
    await check_invariants(
        data, pg_backend.db_url, env, settled, mark, figures, log_text=broker.output()
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of a few MiB for the data directory (root only; skipped elsewhere, failed in CI)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)],
        check=False,
        capture_output=True,
    )
    if done.returncode != 0:
        cannot_run_here(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


async def test_a_full_disk_fails_closed_and_recovers_when_space_returns(
    demo_dir: Path, small_disk: Path, figures: Figures
) -> None:
    data = small_disk / "data"
    shutil.copytree(demo_dir, data)
    # The disk is 12 MiB: readiness's free-space floor (64 MiB by default) is set below it.
    broker = BrokerProcess(data, {"LIAISON_DATABASE_MIN_FREE_BYTES": str(1024 * 1024)}, figures)
    broker.start()
    mark = marker()
    filler = small_disk / "filler"
    try:
        before = await drive(data, broker.url, count=10, marker=mark, seed=4, prefix="before")
        _fill(filler, leave=64 * 1024)
        figures.faults += 1
        during = await drive(
            data, broker.url, count=40 * SCALE, marker=mark, seed=5, prefix="full", concurrency=4
        )
        refused = [op for op in during if op.outcome == "failed"]
        assert refused, "a full disk should have refused some notices"
        assert {op.status for op in refused} <= {503, 507}, {op.status for op in refused}
        filler.unlink()
        outage_end = time.monotonic()
        after = await drive(data, broker.url, count=10, marker=mark, seed=6, prefix="after")
        assert all(op.outcome == "ok" for op in after), "no recovery once space returned"
        figures.first_201_after(after, outage_end)
        await broker.ready()
        ops = await settle_unknown(data, broker.url, before + during + after, mark)
    finally:
        broker.stop()
    figures.add(ops)
    await check_invariants(
        data,
        f"sqlite+aiosqlite:///{data / 'liaison.db'}",
        {},
        ops,
        mark,
        figures,
        log_text=broker.output(),
    )


def _fill(path: Path, *, leave: int) -> None:
    """Fill the file system of ``path`` until only ``leave`` bytes are free."""
    free = shutil.disk_usage(path.parent).free
    with path.open("wb") as f:
        remaining = max(0, free - leave)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            f.write(chunk[: min(len(chunk), remaining)])
            remaining -= min(len(chunk), remaining)
