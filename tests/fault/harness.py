"""The fault harness: a real broker process, signing load, faults, and the invariants after them.

A run starts `liaison serve` on loopback, drives it with signing agency clients (fixed seed,
bounded count and time, loopback only), records every operation's outcome, injects a fault,
heals, drains, and then checks what must hold whatever happened:

- nothing lost: every notice answered 201 is stored once, with a delivery for each recipient
  that policy names; an operation whose outcome is unknown (reset, timeout, or a 503
  ``commit_in_doubt``: the database went during COMMIT) is stored completely once or not at all,
  and its retry under the same idempotency key settles it;
- nothing doubled: one notice per idempotency key, one delivery per (notice, contact, role);
- no one let in: no delivery or wrap for anyone policy does not name; no plaintext in the
  database files or the broker's log;
- fail closed: a refusal during a fault is problem+json without a trace, and what was refused
  (any other answer than 201 or ``commit_in_doubt``) is not stored;
- the audit log verifies, every checkpoint consistent with every later one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from adapters.client.sender import SenderClient, SenderError
from broker.crypto.keys import read_private_key
from broker.store.engine import create_engine
from tests.support import LIAISON, free_port, run_cli, wait_for_broker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "policies" / "examples"
# The long form (documented in the README) multiplies every count; CI runs the short form.
SCALE = int(os.environ.get("LIAISON_FAULT_SCALE", "1"))

# (agency, example) pairs the load mixes: a municipal notice and a canton-wide fan-out.
MIX = (
    ("mk-mvr", "returnee-repatriation", {}),
    ("ba-fbih-ks-mup", "threat-assessment", {}),
)


@dataclass
class Op:
    key: str
    agency: str
    outcome: str  # ok | failed | unknown
    status: int | None = None
    notice_id: str | None = None
    problem: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when the answer (or its absence) came


@dataclass
class Figures:
    """What one fault test did, for the run's closing table."""

    name: str
    operations: int = 0
    faults: int = 0
    bad_inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    leaked: int = 0
    recoveries: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds)

    def add(self, ops: list[Op]) -> None:
        self.operations += len(ops)
        self.outcomes.update(op.outcome for op in ops)

    def first_201_after(self, ops: list[Op], outage_end: float) -> None:
        """Record how long after ``outage_end`` (time.monotonic()) the first notice was accepted."""
        accepted = [op.at for op in ops if op.outcome == "ok" and op.at >= outage_end]
        if accepted:
            self.recoveries.append(("outage end to first 201", min(accepted) - outage_end))


class BrokerProcess:
    """`liaison serve` on a data directory, restartable on the same port, killable with -9."""

    def __init__(
        self, data: Path, env: dict[str, str] | None = None, figures: Figures | None = None
    ) -> None:
        self.data = data
        self.figures = figures  # given: every start records its "restart to ready" time
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LIAISON_LOGGING_FORMAT": "json",
            "LIAISON_SERVER_PUBLIC_URL": self.url,  # never taken from a request's Host
            **(env or {}),
        }
        self.log = Path(tempfile.mkstemp(prefix="liaison-fault-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        started = time.monotonic()
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                # One worker: SIGKILL must hit the one serving process.
                [
                    *LIAISON,
                    "serve",
                    "--data",
                    str(self.data),
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.proc.log = self.log  # type: ignore[attr-defined]
        self.starts += 1
        wait_for_broker(self.url, self.proc)
        if self.figures is not None:
            self._record_ready(started)

    def _record_ready(self, started: float, seconds: float = 30) -> None:
        """Poll /readyz until 200 (from this start's thread) and record how long it took."""
        import urllib.error
        import urllib.request

        deadline = started + seconds
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response,  # noqa: S310 - loopback
            ):
                if response.status == 200:
                    what = "restart to ready" if self.starts > 1 else "start to ready"
                    assert self.figures is not None
                    self.figures.recoveries.append((what, time.monotonic() - started))
                    return
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, whatever was in flight is cut."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def ready(
        self, seconds: float = 30, until: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        """Recovery: /readyz green without anybody's help (and ``until`` its body says so)."""
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError):  # down still: ask again
                    async with http.get(f"{self.url}/readyz") as response:
                        body = await response.json()
                        if response.status == 200 and until(body):
                            return dict(body)
                await asyncio.sleep(0.1)
        raise AssertionError(f"broker not ready after {seconds} s")


def marker() -> str:
    """A unique text put in every notice subject of a test: found anywhere at rest, it leaked."""
    return f"FAULT-MARKER-{secrets.token_hex(6)}"


def notice(example: str, marker: str, overrides: dict[str, Any]) -> dict[str, Any]:
    document = json.loads((EXAMPLES / f"{example}.json").read_text())
    document["subject"] = f"{document['subject']} {marker}"
    document.update(overrides)
    return document


def sender(data: Path, url: str, agency: str, *, timeout: float = 10) -> SenderClient:
    pair = read_private_key(data / "keys" / f"{agency}.pem")
    return SenderClient.from_pem(url, pair.pem(), pair.key_id(agency), retries=0, timeout=timeout)


async def drive(
    data: Path,
    url: str,
    *,
    count: int,
    marker: str,
    seed: int,
    concurrency: int = 8,
    prefix: str = "op",
    answered: asyncio.Event | None = None,
    answered_after: int = 0,
    seconds: float = 60,
) -> list[Op]:
    """Post ``count`` notices (a seeded mix) through ``concurrency`` clients; every outcome kept."""
    rng = random.Random(seed)
    plan = [(f"{prefix}-{seed}-{i}", *rng.choice(MIX)) for i in range(count)]
    queue: asyncio.Queue[tuple[str, str, str, dict[str, Any]]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    ops: list[Op] = []
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        clients: dict[str, SenderClient] = {}
        try:
            while not queue.empty() and time.monotonic() < deadline:
                key, agency, example, overrides = queue.get_nowait()
                if agency not in clients:
                    clients[agency] = await sender(data, url, agency).__aenter__()
                op = await post_one(clients[agency], key, agency, example, marker, overrides)
                ops.append(op)
                if op.outcome == "unknown":  # the broker is down: wait for it as a client would
                    await wait_listening(url)
                if answered is not None and sum(o.outcome == "ok" for o in ops) >= answered_after:
                    answered.set()
        finally:
            for client in clients.values():
                await client.__aexit__(None, None, None)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ops


def start_load(
    data: Path, url: str, *, count: int, marker: str, seed: int, after: int, concurrency: int = 8
) -> tuple[asyncio.Task[list[Op]], asyncio.Event]:
    """Start ``drive`` in the background; the event is set once ``after`` notices got 201 (the
    moment to inject a fault in the middle of the load, however fast the broker has become)."""
    answered = asyncio.Event()
    load = asyncio.create_task(
        drive(
            data,
            url,
            count=count,
            marker=marker,
            seed=seed,
            concurrency=concurrency,
            answered=answered,
            answered_after=after,
        )
    )
    return load, answered


async def wait_listening(url: str, seconds: float = 30) -> None:
    """Until something accepts connections at ``url`` again (bounded)."""
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


async def post_one(
    client: SenderClient,
    key: str,
    agency: str,
    example: str,
    marker: str,
    overrides: dict[str, Any] | None = None,
) -> Op:
    try:
        response = await client.post_notice(
            notice(example, marker, overrides or {}), idempotency_key=key
        )
    except SenderError as e:
        if e.status is None:
            return Op(key, agency, "unknown")
        if (e.problem or {}).get("code") == "commit_in_doubt":  # the broker says it cannot know
            return Op(key, agency, "unknown", e.status, problem=e.problem)
        return Op(key, agency, "failed", e.status, problem=e.problem)
    return Op(key, agency, "ok", response.status, response.body["id"])


async def settle_unknown(data: Path, url: str, ops: list[Op], marker: str) -> list[Op]:
    """Retry each unknown outcome under its own idempotency key, as a careful client does."""
    settled = []
    by_agency = {agency: example for agency, example, _ in MIX}
    for op in ops:
        if op.outcome != "unknown":
            settled.append(op)
            continue
        async with sender(data, url, op.agency) as client:
            retry = await post_one(client, op.key, op.agency, by_agency[op.agency], marker)
        assert retry.outcome == "ok", f"retry of {op.key} after healing: {retry}"
        settled.append(retry)
    return settled


# -- the invariants ------------------------------------------------------------------------------


def expected_recipients(data: Path, env: dict[str, str], example: str) -> set[tuple[str, str]]:
    """(contact, role) pairs policy names for an example notice, from `liaison policy explain`."""
    result = run_cli(
        "policy", "explain", EXAMPLES / f"{example}.json", "--data", data, "--json", env=env
    )
    assert result.returncode == 0, result.stderr
    return {(r["contact"], r["role"]) for r in json.loads(result.stdout)["recipients"]}


async def rows(db_url: str, sql: str) -> list[Any]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(text(sql)))
    finally:
        await engine.dispose()


async def check_invariants(
    data: Path,
    db_url: str,
    env: dict[str, str],
    ops: list[Op],
    marker: str,
    figures: Figures,
    *,
    log_text: str = "",
    unknown_before_retry: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    agency_example = {agency: example for agency, example, _ in MIX}
    expected = {a: expected_recipients(data, env, e) for a, e in agency_example.items()}
    keys = {
        r.key: r.notice_id for r in await rows(db_url, "select key, notice_id from idempotency")
    }
    notices = {r.id: r.sender_id for r in await rows(db_url, "select id, sender_id from notice")}
    deliveries = await rows(db_url, "select notice_id, contact_id, role_id from delivery")
    wraps = await rows(db_url, "select notice_id, recipient_id from notice_wrap")

    # nothing lost: each 201 stored once under its key, with every recipient policy names
    lost = [op.key for op in ops if op.outcome == "ok" and keys.get(op.key) != op.notice_id]
    per_notice: dict[str, list[tuple[str, str]]] = {}
    for d in deliveries:
        per_notice.setdefault(d.notice_id, []).append((d.contact_id, d.role_id))
    incomplete = [
        op.key
        for op in ops
        if op.outcome == "ok" and set(per_notice.get(op.notice_id or "", [])) != expected[op.agency]
    ]
    # fail closed: a refused request left nothing behind, and its answer was a clean problem
    refused_stored = [op.key for op in ops if op.outcome == "failed" and op.key in keys]
    unclean = [
        op.key
        for op in ops
        if op.outcome == "failed" and ("code" not in op.problem or "Traceback" in str(op.problem))
    ]
    # nothing doubled
    doubled = [n for n, pairs in per_notice.items() if len(pairs) != len(set(pairs))]
    orphans = set(notices) - set(keys.values())
    # no one let in
    leaked = [
        (d.notice_id, d.contact_id)
        for d in deliveries
        if (d.contact_id, d.role_id) not in expected[notices[d.notice_id]]
    ]
    contacts = {n: {c for c, _ in pairs} for n, pairs in per_notice.items()}
    stray_wraps = [
        (w.notice_id, w.recipient_id)
        for w in wraps
        if w.recipient_id != "broker-escrow" and w.recipient_id not in contacts.get(w.notice_id, ())
    ]
    plaintext = _plaintext_places(data, marker, log_text)

    figures.lost += len(lost) + len(incomplete)
    figures.duplicated += len(doubled) + len(orphans)
    figures.leaked += len(leaked) + len(stray_wraps) + len(plaintext)
    assert not lost, f"answered 201 but not stored under its key: {lost[:5]}"
    assert not incomplete, f"stored without every recipient policy names: {incomplete[:5]}"
    assert not refused_stored, f"refused, yet stored: {refused_stored[:5]}"
    assert not unclean, f"a refusal that is not a clean problem document: {unclean[:5]}"
    assert not doubled, f"a delivery stored twice: {doubled[:5]}"
    assert not orphans, f"a notice stored under no idempotency key (a double post?): {orphans}"
    assert not leaked and not stray_wraps, f"outside policy: {leaked[:5]} {stray_wraps[:5]}"
    assert not plaintext, f"the notice subject in clear in: {plaintext}"
    assert len(set(keys.values())) == len(keys), "two keys name the same notice"
    verify_audit(data, env)


def _plaintext_places(data: Path, marker: str, log_text: str) -> list[str]:
    needle = marker.encode()
    places = [
        str(path) for path in data.rglob("*") if path.is_file() and needle in path.read_bytes()
    ]
    if marker in log_text:
        places.append("broker log")
    for path in Path(tempfile.gettempdir()).glob("liaison*"):
        if path.is_file() and path.stat().st_size < 50_000_000 and needle in path.read_bytes():
            places.append(str(path))
    return places


def verify_audit(data: Path, env: dict[str, str]) -> None:
    """Export the log from the store and verify it offline: chain, tree, every checkpoint."""
    export = data / "audit-export.jsonl"
    result = run_cli("audit", "export", "--data", data, "--out", export, env=env)
    assert result.returncode == 0, result.stderr
    result = run_cli("audit", "verify", export, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
