"""Outages under load: PostgreSQL stopped hard and restarted, the data directory's disk full.

During the fault the broker must fail closed (503 or 507 problem documents, never a 201 for
something not durable); after it, it must recover by itself and every invariant must hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ci import cannot_run_here
from tests.fault.conftest import on_postgres_at
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
from tests.support import free_port


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian's layout), if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


class PrivateCluster:
    """A PostgreSQL cluster of this test's own on loopback, to stop hard and start again.

    The machine's shared PostgreSQL stays up for every other test running beside this one.
    As root the cluster runs as the ``postgres`` user (PostgreSQL refuses to run as root).
    """

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "root",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-o", options,
            "-l", str(self.root / "server.log"), "start",
        )  # fmt: skip

    def stop(self, mode: str) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def ready(self) -> bool:
        probe = [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(probe, check=False, timeout=10).returncode == 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://root@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    bin_dir = _postgres_bin()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        cannot_run_here("needs PostgreSQL's server binaries (initdb, pg_ctl) to run a cluster")
    root = Path(tempfile.mkdtemp(prefix="liaison-pg-"))
    cluster = PrivateCluster(bin_dir, root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            cluster.stop("fast")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.postgres
async def test_postgresql_stopped_hard_and_restarted_under_load(
    demo_dir: Path, private_cluster: PrivateCluster, figures: Figures
) -> None:
    async with on_postgres_at(demo_dir, private_cluster.url) as pg_backend:
        data, env = pg_backend.data, pg_backend.env
        broker = BrokerProcess(data, env, figures)
        broker.start()
        mark = marker()
        try:
            load, answered = start_load(
                data, broker.url, count=60 * SCALE, marker=mark, seed=3, after=10, concurrency=4
            )
            await answered.wait()
            try:  # a crash: no checkpoint
                await asyncio.to_thread(private_cluster.stop, "immediate")
                figures.faults += 1
                await asyncio.sleep(2)  # requests meet the outage
            finally:
                await asyncio.to_thread(private_cluster.start)
                for _ in range(60):
                    if await asyncio.to_thread(private_cluster.ready):
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
