"""Helpers for driving Liaison the way a user does: the CLI as a process, servers on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

_SCRIPT = Path(sys.executable).parent / "liaison"
LIAISON = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "broker.cli"]


def run_cli(
    *args: str | Path,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*LIAISON, *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_process(
    data: Path, *, env: dict[str, str] | None = None, workers: int = 1, port: int | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`liaison serve` as a child process on a free loopback port; stopped with SIGTERM.

    One worker process unless told (the default, one per core, costs start-up time per test);
    tests/integration/test_workers.py runs two. ``port``: one chosen beforehand (``free_port``),
    for brokers that must name each other before either starts.

    Its output goes to a file (``proc.log``), never to a pipe: a pipe nobody drains fills up and
    blocks the broker's event loop on its next log line.
    """
    port = port or free_port()
    env = env or {}
    # The broker never takes its URL from a request's Host: tell it the one the tests use.
    scheme = "https" if env.get("LIAISON_SERVER_TLS_CERT") else "http"
    env = {"LIAISON_SERVER_PUBLIC_URL": f"{scheme}://127.0.0.1:{port}", **env}
    log = Path(tempfile.mkstemp(prefix="liaison-serve-", suffix=".log")[1])
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [
                *LIAISON,
                "serve",
                "--data",
                str(data),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "LIAISON_LOGGING_FORMAT": "json", **env},
        )
    proc.log = log  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_broker(url, proc)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@asynccontextmanager
async def serve_off_loop(
    data: Path, *, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[subprocess.Popen[str], str]]:
    """``serve_process`` started and stopped from a thread, for a test whose own event loop
    serves something the broker needs (a ``TcpProxy`` to its database): waiting on the loop
    would stall what the broker's start-up or shutdown waits for, until the 15 s kill."""
    stack = ExitStack()
    try:
        yield await asyncio.to_thread(stack.enter_context, serve_process(data, env=env))
    finally:
        await asyncio.to_thread(stack.close)


def output(proc: subprocess.Popen[Any]) -> str:
    """What a `serve_process` broker has written so far."""
    return Path(proc.log).read_text(errors="replace")  # type: ignore[attr-defined]


def wait_for_broker(url: str, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """Until the broker at ``url`` accepts connections; its output in the error if it exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited early:\n{output(proc)[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("broker did not start listening in time")


class LoopbackServer:
    """An aiohttp application served on 127.0.0.1, on ``port`` or an OS-chosen one."""

    def __init__(self, app: web.Application, port: int = 0) -> None:
        self.app = app
        self.runner = web.AppRunner(app)
        self.port = port
        self.url = ""

    async def __aenter__(self) -> LoopbackServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, str, object]:
    async with session.get(url) as response:
        return response.status, response.content_type, await response.json(content_type=None)


class TcpProxy:
    """A loopback TCP proxy that a test can cut (an outage) and restore (a restart)."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.server: Any = None
        self.writers: set[Any] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: Any, writer: Any) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await self._relay(reader, writer, up_reader, up_writer)

    async def _relay(self, reader: Any, writer: Any, up_reader: Any, up_writer: Any) -> None:
        """Both directions as they are, until either side closes (a subclass may read them)."""

        async def pipe(src: Any, dst: Any) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Refuse new connections and drop every open one, as a database going down does."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()

    async def restore(self) -> None:
        await self.start()


def recipient(data: Path, url: str, contact: str) -> Any:
    """A demo contact's recipient client (keys from ``data/keys``), for ``async with``."""
    from adapters.client.recipient import RecipientClient
    from adapters.client.trust import PinnedRoot
    from broker.crypto.keys import read_private_key

    keys = data / "keys"
    return RecipientClient(
        url,
        contact,
        read_private_key(keys / f"{contact}.pem"),
        read_private_key(keys / f"{contact}.x25519.pem"),
        trust=PinnedRoot.from_file(data / "trust" / "root.json"),
    )


def as_a_shell_starts_it() -> None:
    """In a child before exec: SIGINT unblocked and at its default, as a shell leaves it."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_watch(argv: list[str]) -> subprocess.Popen[str]:
    """A ``liaison watch`` process, started as a shell starts it: SIGINT unblocked and at its
    default, whatever this test process's own signal state (a mask or disposition inherited
    across fork and exec would otherwise make Ctrl-C reach nothing)."""

    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=as_a_shell_starts_it,
    )


def stop_watch(watcher: subprocess.Popen[str]) -> str:
    """Ctrl-C, then what it printed. Each event line is flushed as it is printed, so a watcher
    that has not exited 10 s after SIGINT (seen only in full parallel suite runs, cause not yet
    found) is terminated and its output still read."""
    watcher.send_signal(signal.SIGINT)
    try:
        out, _ = watcher.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    return out
