"""The local control channel: how ``liaison`` commands reach a running broker, and know it is one.

A serving broker listens on a Unix socket ``DIR/run/liaison-<port>.sock`` (the folder 0700, the
socket 0600: only the broker's user, and root, can connect) beside its pid file. One request,
one answer, each one line of JSON: ``{"command": "status"}`` or ``{"command": "reload"}``, and
``{"ok": true, "pid": N, ...}`` or ``{"ok": false, "error": "..."}``.

Invariants:
- a command never signals a process by a number read from a file: it talks to the socket, and
  the kernel's peer credentials (``SO_PEERCRED``) must name the pid the pid file names and this
  user (or root), or the answer is not believed;
- a pid file whose socket is gone or refuses (nobody listening: the broker died, kill -9) is
  stale; ``stale`` says so and the caller removes both, without touching the process that
  number may name now;
- a request or answer over ``MAX_LINE`` bytes, or slower than ``TIMEOUT_SECONDS``, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_LINE = 4096
TIMEOUT_SECONDS = 30.0
SUN_PATH_MAX = 100  # sockaddr_un holds 108 bytes; longer paths go through /proc/self/fd

Handler = Callable[[str], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """The broker behind a control socket could not be reached or did not answer properly."""


class Stale(ControlError):
    """Nobody listens on the socket: the pid file beside it is left from a broker that died."""


@dataclass(frozen=True)
class Endpoint:
    """One serving broker's files in ``DIR/run``: its pid file and its control socket."""

    pid_file: Path
    socket: Path

    @classmethod
    def for_port(cls, run_dir: Path, port: int) -> Endpoint:
        return cls(run_dir / f"liaison-{port}.pid", run_dir / f"liaison-{port}.sock")

    @classmethod
    def found_in(cls, run_dir: Path) -> list[Endpoint]:
        return [
            cls(pid_file, pid_file.with_suffix(".sock"))
            for pid_file in sorted(run_dir.glob("liaison-*.pid"))
        ]

    def remove(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)


@contextlib.contextmanager
def _short(path: Path) -> Any:
    """A path to ``path`` that fits in a sockaddr_un (a long data directory goes by its fd)."""
    if len(os.fsencode(path)) < SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def serve(endpoint: Endpoint, handle: Handler) -> asyncio.AbstractServer:
    """Listen on the endpoint's socket (replacing a stale one), then write the pid file."""
    run_dir = endpoint.socket.parent
    run_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    endpoint.socket.unlink(missing_ok=True)  # the caller holds the port: any file here is stale

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), TIMEOUT_SECONDS)
            request = json.loads(line) if line.endswith(b"\n") else None
            command = request.get("command") if isinstance(request, dict) else None
            reply = await handle(command) if isinstance(command, str) else _refused("bad request")
            writer.write(json.dumps({"pid": os.getpid(), **reply}).encode() + b"\n")
            await writer.drain()
        except (ValueError, OSError, TimeoutError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    with _short(endpoint.socket) as where:
        server = await asyncio.start_unix_server(answer, path=where, limit=MAX_LINE)
    os.chmod(endpoint.socket, 0o600)
    endpoint.pid_file.write_text(f"{os.getpid()}\n")
    return server


def _refused(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


def ask(endpoint: Endpoint, command: str, *, timeout: float = TIMEOUT_SECONDS) -> dict[str, Any]:
    """Send ``command`` to the broker behind ``endpoint`` and return its answer, once its peer
    credentials prove it is the process the pid file names; ``Stale`` when nobody listens."""
    expected = _pid_in(endpoint.pid_file)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            with _short(endpoint.socket) as where:
                conn.connect(where)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise Stale(f"nobody listens on {endpoint.socket.name}") from e
        except OSError as e:
            raise ControlError(f"cannot reach {endpoint.socket}: {e.strerror}") from e
        pid, uid, _ = struct.unpack(
            "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        )
        if pid != expected or uid not in (os.getuid(), 0):
            raise ControlError(
                f"{endpoint.socket.name} is served by process {pid} (user {uid}), "
                f"not the broker {endpoint.pid_file.name} names ({expected})"
            )
        reply = _exchange(conn, command)
    if reply.get("pid") != pid:
        raise ControlError(f"{endpoint.socket.name}: the answer names another process")
    return reply


def _exchange(conn: socket.socket, command: str) -> dict[str, Any]:
    try:
        conn.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n") and len(data) <= MAX_LINE:
            chunk = conn.recv(MAX_LINE)
            if not chunk:
                break
            data += chunk
        reply = json.loads(data)
    except (OSError, ValueError) as e:
        raise ControlError("the broker did not answer") from e
    if not isinstance(reply, dict):
        raise ControlError("the broker's answer is not an object")
    return reply


def _pid_in(pid_file: Path) -> int:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError) as e:
        raise Stale(f"{pid_file.name} holds no process id") from e
