"""Liaison benchmarks: intake beside its ceilings, audit verification, proofs and routing.

    make bench                 # or: .venv/bin/python tests/bench/bench.py [--seconds 10] [--out FILE]

Starts real servers on loopback (a `liaison serve` on durable SQLite, and on PostgreSQL when it
is reachable), drives them with 32 concurrent signing clients, and prints one table; the same
figures go to a JSON file. Nothing here asserts: figures are read, compared with the targets in
the README's performance section, and tracked over time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from broker.audit.checkpoint import Checkpoint
from broker.audit.events import GENESIS, AuditEvent, canonical
from broker.audit.merkle import CompactRange, consistency_proof, inclusion_proof, leaf_hash
from broker.audit.verify import verify_export
from broker.crypto.envelope import seal, wrap_many
from broker.crypto.httpsig import ed25519_verify
from broker.crypto.keys import generate, read_private_key
from broker.crypto.note import sign_note
from broker.service.audit_workers import on_every_core

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale

LIAISON = [str(Path(sys.executable).parent / "liaison")]
CONCURRENCY = 32
TARGETS = {
    "intake_vs_crypto": 0.80,
    "cpu_ms_per_notice": 1.5,
    "postgres_vs_sqlite": 0.90,
    "vs_medallion": 4.0,
    "fanout_ms": 300,
    "push_p99_ms": 100,
    "kib_per_connection": 16,
    "verify_1m_seconds": 5.0,
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, seconds: float = 30) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# -- a data directory with municipalities of exactly 5 and 10 recipients ------------------------


def bench_data(workdir: Path) -> Path:
    data = workdir / "data"
    subprocess.run([*LIAISON, "init", str(data), "--demo"], check=True, capture_output=True)
    directory = yaml.safe_load((data / "directory.yaml").read_text())
    for size in (5, 10):
        scale.add_municipality(directory, f"mk-bench{size}", "mk-northeast", size)
    scale.apply_directory(data, directory)
    return data


def notice_for(recipients: int, jurisdiction: str | None = None) -> bytes:
    example = json.loads((ROOT / "policies/examples/threat-assessment.json").read_text())
    example["jurisdiction"] = jurisdiction or f"mk-bench{recipients}"
    return json.dumps(example).encode()


# -- the load client ---------------------------------------------------------------------------


async def drive(url: str, body: bytes, key: Any, keyid: str, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                headers = scale.signed_post(url, body, key, keyid)
                started = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 201:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    latencies.sort()
    return {
        "rate": len(latencies) / seconds,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1] if latencies else 0,
        "errors": errors,
        "seconds": seconds,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and every process under it (workers), from /proc:
    steady on a noisy machine where throughput swings, so the bench reports it per notice."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


async def measured(pid: int, run: Any) -> dict[str, float]:
    """Drive a server and add its CPU time per answered notice (ms) to the figures."""
    before = cpu_seconds(pid)
    figures: dict[str, float] = await run
    spent = cpu_seconds(pid) - before
    answered = figures["rate"] * figures["seconds"] + figures["errors"]
    figures["cpu_ms_per_notice"] = 1000 * spent / max(answered, 1)
    return figures


def serve(data: Path, env: dict[str, str], workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="liaison-bench-", suffix=".log")  # noqa: SIM115 - the server's lifetime
    process = subprocess.Popen(
        [*LIAISON, "serve", "--data", str(data), "--port", str(port), "--workers", str(workers)],
        env={
            **os.environ,
            "LIAISON_LOGGING_LEVEL": "warning",
            "LIAISON_SERVER_PUBLIC_URL": f"http://127.0.0.1:{port}",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    wait_port(port)
    # Several workers: the supervisor's socket accepts before they serve; it says when they do.
    deadline = time.monotonic() + 60
    while workers > 1 and f"with {workers} workers" not in Path(log.name).read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the {workers} workers did not start")
        time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


async def intake(
    data: Path, env: dict[str, str], recipients: int, seconds: float, workers: int = 1
) -> dict[str, float]:
    metrics_port = free_port()
    process, url = serve(data, {**env, "LIAISON_METRICS_PORT": str(metrics_port)}, workers)
    try:
        pair = read_private_key(data / "keys" / "mk-bjb.pem")
        figures = await measured(
            process.pid,
            drive(
                f"{url}/v1/notices",
                notice_for(recipients),
                pair.private,
                pair.key_id("mk-bjb"),
                seconds,
            ),
        )
        figures["decision_cache_hit_rate"], figures["full_gcs"] = await server_counts(metrics_port)
        return figures
    finally:
        stop(process)


async def server_counts(port: int) -> tuple[float, float]:
    """From the broker's /metrics: the share of Cedar decisions answered from its decision
    cache, and the full garbage collections it ran (each pauses the event loop)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    counts = {"hit": 0.0, "miss": 0.0}
    full = 0.0
    for line in text.splitlines():
        if line.startswith("liaison_policy_decisions{"):
            source = line.split('source="', 1)[1].split('"', 1)[0]
            counts[source] = float(line.rsplit(" ", 1)[1])
        elif line.startswith('python_gc_collections_total{generation="2"}'):
            full = float(line.rsplit(" ", 1)[1])
    return counts["hit"] / max(counts["hit"] + counts["miss"], 1), full


async def push_hit_rate(port: int) -> float:
    """From the broker's /metrics: the share of live push's read decisions answered from its
    cache (the first broadcast of a kind decides them all; one like it, none)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    counts = {"hit": 0.0, "miss": 0.0}
    for line in text.splitlines():
        if line.startswith("liaison_push_decisions{"):
            counts[line.split('source="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    return counts["hit"] / max(counts["hit"] + counts["miss"], 1)


async def ceiling(mode: str, data: Path, recipients: int, seconds: float) -> dict[str, float]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests/bench/ceiling_server.py"),
            mode,
            str(port),
            str(recipients),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    try:
        pair = read_private_key(data / "keys" / "mk-bjb.pem")
        keyid = pair.key_id("mk-bjb")
        async with aiohttp.ClientSession() as http:
            await http.post(
                f"http://127.0.0.1:{port}/register",
                json={"keyid": keyid, "public": pair.public_raw.hex()},
            )
        return await measured(
            process.pid,
            drive(
                f"http://127.0.0.1:{port}/v1/notices",
                notice_for(recipients),
                pair.private,
                keyid,
                seconds,
            ),
        )
    finally:
        stop(process)


# -- raw primitives ------------------------------------------------------------------------------


def per_second(fn: Any, seconds: float = 1.0) -> float:
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        fn()
        count += 1
    return count / seconds


def raw_figures(workdir: Path) -> dict[str, float]:
    signer = generate("ed25519")
    message = b"x" * 600
    signature = signer.private.sign(message)  # type: ignore[union-attr]
    publics = [bytes(generate("x25519").public_raw)]
    key = seal(b"body", b"aad").data_key
    db = sqlite3.connect(workdir / "raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")

    def commit() -> None:
        db.execute("BEGIN")
        db.execute("INSERT INTO t (v) VALUES (?)", (message,))
        db.execute("COMMIT")

    return {
        "ed25519_verify_per_s": per_second(
            lambda: ed25519_verify(signer.public_raw, message, signature)
        ),
        "wrap_per_s": per_second(lambda: wrap_many(key, publics)),
        "sqlite_durable_commits_per_s": per_second(commit),
    }


# -- audit verification, proofs, routing ---------------------------------------------------------


def audit_figures(count: int) -> dict[str, float]:
    signer = generate("ed25519")
    now = datetime.now(UTC)
    event = AuditEvent(
        at=now,
        actor="agency:mk-mvr",
        action="notice.routed",
        object="notice:0123456789abcdef",
        channel="returnee-repatriation",
        policies=("channel/returnee-repatriation/receive/x",),
        details={"role": "mk-kumanovo.pcve-focal-point", "rule": "municipal-pcve-focal-point"},
        request="r",
    )
    lines, prev, tree, leaves = [], GENESIS, CompactRange(), []
    for seq in range(1, count + 1):
        body = canonical(event, seq, prev)
        leaf = leaf_hash(body)
        tree.append(leaf)
        leaves.append(leaf)
        prev = leaf.hex()
        lines.append(body)
    origin = "liaison.invalid/audit/bench"
    note = sign_note(Checkpoint(origin, count, tree.root()).text(), origin, signer.private)  # type: ignore[arg-type]
    header = {
        "format": "liaison-audit-v1",
        "origin": origin,
        "key_name": origin,
        "public_key": __import__("base64").b64encode(signer.public_raw).decode(),
        "checkpoints": [note],
    }
    started = time.perf_counter()
    result = verify_export(header, lines, prepare=on_every_core())
    verify_seconds = time.perf_counter() - started
    assert result.ok, result.message
    figures = {"events": count, "verify_seconds": verify_seconds}
    if count <= 100_000:
        started = time.perf_counter()
        proof = inclusion_proof(count // 2, leaves)
        figures["inclusion_ms"], figures["inclusion_hashes"] = (
            (time.perf_counter() - started) * 1000,
            len(proof),
        )
        started = time.perf_counter()
        proof = consistency_proof(count // 3, leaves)
        figures["consistency_ms"], figures["consistency_hashes"] = (
            (time.perf_counter() - started) * 1000,
            len(proof),
        )
    return figures


def routing_figures(data: Path) -> dict[str, float]:
    from broker.directory.load import load_directory_file
    from broker.domain.notice import NoticeFacts
    from broker.policy.decide import Authorizer
    from broker.policy.load import load_policies
    from broker.policy.route import route

    directory, _ = load_directory_file(data / "directory.yaml", max_bytes=10**8)
    authorizer = Authorizer(load_policies(data / "policies"), directory)
    now = datetime.now(UTC)
    out = {}
    for name, facts in (
        ("municipality", NoticeFacts("threat-assessment", "mk-bench10", "medium", "mk-bjb")),
        ("country", NoticeFacts("threat-assessment", "mk", "medium", "mk-bjb")),
    ):
        result = route(facts, authorizer, now)
        candidates = len(result.recipients) + len(result.not_reached)
        runs = per_second(lambda facts=facts: route(facts, authorizer, now), 1.0)
        out[f"route_{name}_ms"] = 1000 / runs
        out[f"route_{name}_us_per_candidate"] = 1e6 / runs / max(candidates, 1)
        out[f"route_{name}_candidates"] = candidates
    return out


# -- at scale: fan-out, push, growth ---------------------------------------------------------------


async def scaled_figures(
    workdir: Path, results: dict[str, Any], seconds: float, *, full: bool
) -> None:
    """5,000 contacts in 500 municipalities: a region of 2,000 for the broadcast, 3,000 more
    for push; then the store grown to 100,000 (and 1,000,000) notices."""
    data = workdir / "scaled"
    subprocess.run([*LIAISON, "init", str(data), "--demo"], check=True, capture_output=True)
    scaled = scale.scaled_data(data, {"mk-benchfan": 200, "mk-benchpush": 300})
    contacts = sorted(scaled.signing)
    metrics_port = free_port()
    process, url = serve(data, {"LIAISON_METRICS_PORT": str(metrics_port)})
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            into, memory = await scale.connect(url, process.pid, scaled, contacts, http)
            poster = scale.Poster(url, data, http)
            results["fanout"] = await scale.fan_out(poster, into, "mk-benchfan", 2000)
            results["fanout"]["push_decision_hit_rate"] = await push_hit_rate(metrics_port)
            results["push"] = {
                **await scale.push(poster, into, scaled.regions["mk-benchpush"], 50, seconds),
                **memory,
            }
            for task in into.tasks:
                task.cancel()
            await asyncio.gather(*into.tasks, return_exceptions=True)
    finally:
        stop(process)
    first = scaled.regions["mk-benchpush"][0]
    owners = [
        (
            f"{first}-{i}",
            f"{first}.mayor" if i % 2 == 0 else f"{first}.community-safety-council",
            first,
        )
        for i in range(2)
    ]
    stored, growth = 0, {}
    # The first size fills a page of the inbox, so that every size reads a full page.
    for size in (1_000, 100_000, 1_000_000) if full else (1_000, 100_000):
        fill = (
            scale.fill_store(data / "liaison.db", size - stored, owners, start=stored)
            if size > stored
            else 0.0
        )
        stored = size
        process, url = serve(data, {})
        try:
            token = (await scale.tokens(url, scaled, [owners[0][0]]))[owners[0][0]]
            pair = read_private_key(data / "keys" / "mk-bjb.pem")
            intake_run = await drive(
                f"{url}/v1/notices",
                notice_for(10, scaled.regions["mk-benchpush"][1]),
                pair.private,
                pair.key_id("mk-bjb"),
                seconds,
            )
            growth[str(size)] = {
                "fill_seconds": fill,
                "intake_rate": intake_run["rate"],
                "intake_p99_ms": intake_run["p99_ms"],
                "inbox": await scale.inbox_reads(url, token),
            }
        finally:
            stop(process)
    results["growth"] = growth


# -- the run -----------------------------------------------------------------------------------


async def postgres_env() -> dict[str, str] | None:
    import asyncpg

    base = os.environ.get("LIAISON_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
    try:
        conn = await asyncpg.connect(base, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    name = f"liaison_bench_{secrets.token_hex(4)}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return {"LIAISON_DATABASE_URL": base.rsplit("/", 1)[0] + f"/{name}", "_db": name, "_base": base}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="each load run (default 10)")
    parser.add_argument("--out", default=str(ROOT / "tests/bench/results.json"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3-second runs; 100k audit events and stored notices only",
    )
    parser.add_argument(
        "--no-scale", action="store_true", help="skip fan-out, push and growth (minutes)"
    )
    parser.add_argument(
        "--intake-only",
        action="store_true",
        help="only the intake runs and their ceilings (SQLite and PostgreSQL), for A/B work",
    )
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    workdir = Path(tempfile.mkdtemp(prefix="liaison-bench-"))
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "started": datetime.now(UTC).isoformat(),
        "seconds_per_run": seconds,
    }
    try:
        data = bench_data(workdir)
        results["raw"] = raw_figures(workdir)
        for n in (5, 10):
            results[f"bare_{n}"] = await ceiling("bare", data, n, seconds)
            results[f"crypto_{n}"] = await ceiling("crypto", data, n, seconds)
            results[f"intake_{n}_sqlite"] = await intake(data, {}, n, seconds)
        results["intake_10_sqlite_2w"] = await intake(data, {}, 10, seconds, workers=2)
        pg = await postgres_env()
        if pg is not None:
            env = {"LIAISON_DATABASE_URL": pg["LIAISON_DATABASE_URL"]}
            subprocess.run(
                [
                    *LIAISON,
                    "directory",
                    "apply",
                    str(data / "directory.yaml"),
                    "--data",
                    str(data),
                    "--force",
                ],
                check=True,
                capture_output=True,
                env={**os.environ, **env},
            )
            for n in (5, 10):
                results[f"intake_{n}_postgres"] = await intake(data, env, n, seconds)
            results["intake_10_postgres_2w"] = await intake(data, env, 10, seconds, workers=2)
        if args.intake_only:
            return
        results["routing"] = routing_figures(data)
        results["audit_appends"] = await scale.audit_appends(workdir, min(seconds, 3.0))
        if not args.no_scale:
            await scaled_figures(workdir, results, seconds, full=not args.quick)
        venv = scale.medallion_env(Path.home() / ".cache" / "liaison-bench")
        if venv is not None:
            results["medallion"] = await scale.medallion(
                venv, workdir, free_port(), seconds, CONCURRENCY
            )
        results["audit_100k"] = audit_figures(100_000)
        if not args.quick:
            results["audit_1m"] = audit_figures(1_000_000)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if args.intake_only:
            print(table(results))
    if args.intake_only:
        return
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\n(figures also in {args.out})")


def table(r: dict[str, Any]) -> str:
    lines = [
        f"Liaison benchmark on {r['machine']['cpus']} cores, Python {r['machine']['python']}, "
        f"{r['seconds_per_run']:.0f} s per run, {CONCURRENCY} concurrent signing clients",
        "",
    ]
    raw = r["raw"]
    lines.append(
        f"{'raw Ed25519 verifications':44} {raw['ed25519_verify_per_s']:>10,.0f} /s (one core)"
    )
    lines.append(f"{'raw sealed-box wraps':44} {raw['wrap_per_s']:>10,.0f} /s (one core)")
    lines.append(
        f"{'raw durable SQLite commits':44} {raw['sqlite_durable_commits_per_s']:>10,.0f} /s"
    )
    lines.append("")
    lines.append(
        f"{'intake':34} {'notices/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>7}   vs bare   vs crypto-only"
    )
    for n in (5, 10):
        bare, crypto = r[f"bare_{n}"], r[f"crypto_{n}"]
        lines.append(
            f"{f'  bare handler ({n} recipients)':34} {bare['rate']:>10,.0f} {bare['p50_ms']:>8.1f} {bare['p99_ms']:>8.1f} {bare['cpu_ms_per_notice']:>7.2f}"
        )
        lines.append(
            f"{f'  crypto only ({n} recipients)':34} {crypto['rate']:>10,.0f} {crypto['p50_ms']:>8.1f} {crypto['p99_ms']:>8.1f} {crypto['cpu_ms_per_notice']:>7.2f}"
        )
        for store, label in [(s, f"{s} ({n})") for s in ("sqlite", "postgres")] + [
            (f"{s}_2w", f"{s} ({n}, 2 workers)") for s in ("sqlite", "postgres")
        ]:
            key = f"intake_{n}_{store}"
            if key in r:
                x = r[key]
                lines.append(
                    f"{f'  Liaison {label}':34} {x['rate']:>10,.0f} {x['p50_ms']:>8.1f} {x['p99_ms']:>8.1f} {x['cpu_ms_per_notice']:>7.2f}"
                    f"   {x['rate'] / bare['rate']:>6.1%}   {x['rate'] / crypto['rate']:>6.1%}"
                    + f"   cache hits {x.get('decision_cache_hit_rate', 0):.1%}"
                    + f", {x.get('full_gcs', 0):.0f} full GCs"
                    + (f"   errors {x['errors']}" if x["errors"] else "")
                )
    ten = r["intake_10_sqlite"]["rate"]
    share = ten / r["crypto_10"]["rate"]
    cpu = r["intake_10_sqlite"]["cpu_ms_per_notice"]
    want_share, want_cpu, want_pg = (
        TARGETS["intake_vs_crypto"],
        TARGETS["cpu_ms_per_notice"],
        TARGETS["postgres_vs_sqlite"],
    )
    share_gap, cpu_gap = f"{want_share - share:.0%}", f"{cpu - want_cpu:.2f} ms"
    lines += [
        "",
        "targets:",
        f"  intake, 10 recipients, durable SQLite >= {want_share:.0%} of the crypto-only ceiling: "
        f"{share:.0%} ({_verdict(share >= want_share, share_gap)})",
        f"  server CPU per notice <= {want_cpu} ms: {cpu:.2f} ms "
        f"({_verdict(cpu <= want_cpu, cpu_gap)})",
    ]
    if "intake_10_postgres" in r:
        pg = r["intake_10_postgres"]["rate"] / ten
        pg_gap = f"{want_pg - pg:.0%}"
        lines.append(
            f"  PostgreSQL within 10% of SQLite: {pg:.0%} ({_verdict(pg >= want_pg, pg_gap)})"
        )
    lines.append(
        f"  as a share of raw ceilings: {ten / raw['ed25519_verify_per_s']:.1%} of Ed25519 verifications, "
        f"{ten * 11 / raw['wrap_per_s']:.1%} of sealed-box wraps (11 per notice), "
        f"{ten / raw['sqlite_durable_commits_per_s']:.1%} of durable SQLite commits"
    )
    lines += scale_lines(r, ten)
    if "routing" not in r:
        return "\n".join(lines)
    routing = r["routing"]
    lines += [
        "",
        f"routing: {routing['route_municipality_ms']:.2f} ms per municipal notice "
        f"({routing['route_municipality_candidates']:.0f} candidates), {routing['route_country_ms']:.2f} ms "
        f"per country-wide notice ({routing['route_country_candidates']:.0f} candidates, "
        f"{routing['route_country_us_per_candidate']:.0f} µs per candidate)",
    ]
    for key in ("audit_100k", "audit_1m"):
        if key in r:
            a = r[key]
            extra = (
                (
                    f"; inclusion proof {a['inclusion_hashes']:.0f} hashes in {a['inclusion_ms']:.0f} ms, consistency "
                    f"{a['consistency_hashes']:.0f} hashes in {a['consistency_ms']:.0f} ms"
                )
                if "inclusion_ms" in a
                else ""
            )
            lines.append(
                f"audit verify: {a['events']:,.0f} events in {a['verify_seconds']:.2f} s{extra}"
            )
    return "\n".join(lines)


def _verdict(ok: bool, by: str) -> str:
    return "met" if ok else f"missed by {by}"


def scale_lines(r: dict[str, Any], ten: float) -> list[str]:
    lines = [""]
    if "fanout" in r:
        f = r["fanout"]
        lines.append(
            f"fan-out to {f['recipients']:,} connected recipients: 201 after {f['commit_ms']:.0f} ms, last "
            f"client has it after {f['last_receipt_ms']:.0f} ms ({f['received']:,} received; target 300 ms: "
            f"{_verdict(f['last_receipt_ms'] <= 300, '%.0f ms' % (f['last_receipt_ms'] - 300))}); "
            f"push decisions from the cache {f.get('push_decision_hit_rate', 0):.0%} "
            "(the median of three broadcasts: the first decides for all 2,000, the next two find it kept)"
        )
    if "push" in r:
        p = r["push"]
        lines.append(
            f"push to {p['clients']:,} live clients at {p['rate']:.0f} notices/s (201 after p50 {p['commit_p50_ms']:.0f} ms): "
            f"POST to receipt p50 {p['p50_ms']:.0f} ms, "
            f"p99 {p['p99_ms']:.0f} ms (target 100 ms: {_verdict(p['p99_ms'] <= 100, '%.0f ms' % (p['p99_ms'] - 100))}), "
            f"{p['missing']} receipts missing; {p['kib_per_connection']:.1f} KiB per idle connection "
            f"(target 16 KiB: {_verdict(p['kib_per_connection'] <= 16, '%.1f KiB' % (p['kib_per_connection'] - 16))})"
        )
    if "audit_appends" in r:
        a = r["audit_appends"]
        lines.append(
            f"audit appends (durable SQLite): {a['single_per_s']:,.0f} /s one per transaction, "
            f"{a['batched_50_per_s']:,.0f} /s in batches of 50"
        )
    if "growth" in r:
        parts = [
            f"{int(n):,} stored: intake {g['intake_rate']:,.0f}/s, inbox p50 {g['inbox']['p50_ms']:.1f} ms "
            f"p99 {g['inbox']['p99_ms']:.1f} ms"
            for n, g in r["growth"].items()
        ]
        lines.append("growth (10 recipients, SQLite): " + "; ".join(parts))
    if "medallion" in r:
        m = r["medallion"]
        lines.append(
            f"medallion TAXII 2.1 (memory backend, gunicorn, same client): {m['rate']:,.0f} POSTs/s "
            f"(first quarter {m['first_quarter_rate']:,.0f}/s, last {m['last_quarter_rate']:,.0f}/s, "
            f"{m['objects']:,} objects); Liaison intake is {ten / max(m['rate'], 1e-9):.1f}x "
            f"(target 4x: {_verdict(ten >= 4 * m['rate'], '%.0f/s' % (4 * m['rate'] - ten))})"
        )
    return lines


if __name__ == "__main__":
    asyncio.run(main())
