"""``liaison serve --workers N``: a supervisor and N worker processes serving one port.

One Python process holds the GIL for about 4 ms of every notice, so one process tops out near
a core; N processes use N cores. The design, and what each part promises:

- the supervisor binds the listening socket once (a port in use is one clear error) and forks
  the workers before anything else has run in it: no event loop, thread or database connection
  crosses a fork. Each worker serves the inherited socket; the kernel gives each connection to
  one of them, and a worker that dies leaves queued connections to the others;
- worker 0 starts first (it migrates the schema), the others once it listens; worker 0 alone
  runs the broker-wide jobs (escalation, retention, checkpoints, outbox, nonce purge: see
  ``broker/app.py``), so each runs once per broker; the PostgreSQL listener and, on SQLite, the
  commit feed run in every worker, so live push reaches a stream on any of them;
- a worker that fails before it listens stops the broker with its exit status (its own one-line
  error on stderr); a worker that dies later is started again with the same number, at once,
  or after a growing pause (up to ``RESTART_MAX_SECONDS``) while it keeps dying young;
- SIGTERM or SIGINT stops every worker (each finishes its requests and commits, as a single
  ``serve`` does), then the supervisor, exit 0; SIGHUP is passed to every worker (policy
  reload); worker 0 holds the control socket and pid file ``DIR/run/liaison-<port>.*`` (a
  ``liaison policy reload`` through it reaches every worker: worker 0 asks the supervisor to
  pass SIGHUP on), and the supervisor's pid is the one a service manager signals;
- a worker whose supervisor is gone stops too (``PR_SET_PDEATHSIG`` on Linux).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from broker.cli.common import run_command
from broker.config import Settings
from broker.errors import ConfigError
from broker.logs import get_logger
from broker.terminal import safe_print as print  # every line printed has control characters escaped

log = get_logger("liaison.workers")
SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
STOP_SECONDS = 30.0  # a worker's own shutdown takes up to 10 s (requests, then the commit)
YOUNG_SECONDS = 10.0  # a worker that dies younger than this waits before its next start
RESTART_MAX_SECONDS = 30.0
BACKLOG = 1024
PR_SET_PDEATHSIG = 1  # linux/prctl.h

Run = Callable[[int, Callable[[], None]], int]  # (worker number, "I listen") -> exit status


def worker_count(settings: Settings) -> int:
    """``server.workers``, or one per core this process may run on when it is 0."""
    if settings.server.workers:
        return settings.server.workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def listening_socket(host: str, port: int) -> socket.socket:
    """The one listening socket every worker serves."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        return socket.create_server((host, port), family=family[0][0], backlog=BACKLOG)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e


@dataclass(slots=True)
class Worker:
    number: int
    pid: int
    started: float
    ready_fd: int | None  # read end of the pipe it writes one byte to once it listens


class Supervisor:
    def __init__(self, count: int, run: Run) -> None:
        self.count = count
        self.run = run
        self.workers: dict[int, Worker] = {}  # by pid
        self.due: dict[int, float] = {}  # worker number -> when to start it again
        self.pause: dict[int, float] = {}  # worker number -> its last pause before a restart
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # taken by sigtimedwait

    def serve(self, started: Callable[[], None]) -> int:
        """Start the workers, call ``started``, then supervise until SIGTERM/SIGINT."""
        try:
            failed = self._start()
            if failed is not None:
                return failed
            by_number = sorted((w.number, w.pid) for w in self.workers.values())
            log.info("workers_started", pids=[pid for _, pid in by_number])
            started()
            return self._supervise()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)

    def _start(self) -> int | None:
        """Worker 0, then the others; an exit status if one failed (or a stop came) first."""
        failed = self._until_listening([self._spawn(0, report=True)])
        if failed is not None or self.count == 1:
            return failed
        return self._until_listening([self._spawn(n, report=True) for n in range(1, self.count)])

    def _until_listening(self, waiting: list[Worker]) -> int | None:
        pending = {w.ready_fd: w for w in waiting if w.ready_fd is not None}
        while pending:
            if self._stop_asked(timeout=0):
                return self._stop()
            readable, _, _ = select.select(list(pending), [], [], 0.1)
            for fd in readable:
                worker = pending.pop(fd)
                said = os.read(fd, 1)
                os.close(fd)
                worker.ready_fd = None
                if not said:  # it ended without listening: its error is on stderr already
                    return self._failed(worker)
        return None

    def _failed(self, worker: Worker) -> int:
        _, status = os.waitpid(worker.pid, 0)
        del self.workers[worker.pid]
        self._stop()
        code = os.waitstatus_to_exitcode(status)
        return code if code > 0 else 1

    def _supervise(self) -> int:
        while True:
            if self._stop_asked(timeout=self._next_wait()):
                return self._stop()
            self._reap()
            now = time.monotonic()
            for number, when in list(self.due.items()):
                if when <= now:
                    del self.due[number]
                    self._spawn(number, report=False)

    def _next_wait(self) -> float:
        if not self.due:
            return 1.0
        return max(0.01, min(1.0, min(self.due.values()) - time.monotonic()))

    def _stop_asked(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for a signal; SIGHUP is passed on, SIGCHLD left to ``_reap``."""
        info = signal.sigtimedwait(SIGNALS, timeout)
        if info is None:
            return False
        if info.si_signo == signal.SIGHUP:
            log.info("policy_reload_forwarded", workers=len(self.workers))
            self._signal_all(signal.SIGHUP)
        return info.si_signo in (signal.SIGTERM, signal.SIGINT)

    def _reap(self) -> None:
        for pid, status in _exited():
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            lived = time.monotonic() - worker.started
            young = lived < YOUNG_SECONDS
            pause = min(2 * self.pause.get(worker.number, 0.5), RESTART_MAX_SECONDS) if young else 0
            self.pause[worker.number] = pause or 0.5
            self.due[worker.number] = time.monotonic() + pause
            log.warning(
                "worker_exited",
                worker=worker.number,
                pid=pid,
                status=os.waitstatus_to_exitcode(status),
                restart_in_seconds=pause,
            )

    def _stop(self) -> int:
        """SIGTERM to every worker; SIGKILL to any still running after ``STOP_SECONDS``."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while self.workers and time.monotonic() < deadline:
            signal.sigtimedwait({signal.SIGCHLD}, 0.1)
            for pid, _ in _exited():
                self.workers.pop(pid, None)
        if self.workers:
            log.error("workers_killed", pids=sorted(self.workers))
            self._signal_all(signal.SIGKILL)
            for pid in list(self.workers):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        self.workers.clear()
        return 0

    def _signal_all(self, number: int) -> None:
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    def _spawn(self, number: int, *, report: bool) -> Worker:
        read_fd, write_fd = os.pipe() if report else (None, None)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            if read_fd is not None:
                os.close(read_fd)
            # A reload passed on before the worker handles SIGHUP must not end it: it reads
            # the policy files as it starts anyway.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
            _worker_main(parent, number, self.run, write_fd)
        if write_fd is not None:
            os.close(write_fd)
        worker = Worker(number, pid, time.monotonic(), read_fd)
        self.workers[pid] = worker
        if not report:  # a restart; the first start is logged once all listen (a failed one
            log.info("worker_started", worker=number, pid=pid)  # leaves only its error)
        return worker


def _exited() -> list[tuple[int, int]]:
    """(pid, wait status) of every child that has ended, without waiting."""
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, status))


def _worker_main(parent: int, number: int, run: Run, ready_fd: int | None) -> None:
    """A forked worker's whole life: run, flush, and leave without the supervisor's clean-up."""
    code = 1
    try:
        _die_with(parent)

        def listening() -> None:
            if ready_fd is not None:
                os.write(ready_fd, b"1")

        code = run(number, listening)
    except BaseException:  # a worker must never fall back into the supervisor's code
        traceback.print_exc()
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """Have the kernel stop this worker when the supervisor ends, however it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before the request took effect
        os._exit(1)


def serve_workers(
    settings: Settings,
    environ: Mapping[str, str],
    data: Path,
    *,
    count: int,
    serve_one: Callable[..., int],
) -> int:
    """Run ``count`` workers, each ``serve_one(settings, environ, data, worker=, workers=, sock=,
    listening=)`` under ``run_command``'s error handling."""
    from broker import app as _preloaded  # noqa: F401 - imported once here, shared by every fork

    sock = listening_socket(settings.server.host, settings.server.port)
    port = sock.getsockname()[1]

    def run(number: int, listening: Callable[[], None]) -> int:
        def command(_: argparse.Namespace) -> int:
            return serve_one(
                settings,
                environ,
                data,
                worker=number,
                workers=count,
                sock=sock,
                listening=listening,
            )

        return run_command(argparse.Namespace(run=command))

    def started() -> None:
        scheme = "https" if settings.server.tls_cert else "http"
        print(
            f"Liaison listening on {scheme}://{settings.server.host}:{port} with {count} "
            f"workers (data {data}, Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )

    try:
        return Supervisor(count, run).serve(started)
    finally:
        sock.close()
