"""Benchmarks at scale: fan-out, push to thousands of live clients, growth of the store, audit
appends, and the medallion TAXII server as a peer. Used by bench.py; prints nothing itself.

Every load here goes to loopback only, is bounded in count and time, and stops by itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from broker.crypto.httpsig import content_digest, sign_request
from broker.crypto.keys import KeyPair, generate, read_private_key
from broker.crypto.tokens import make_assertion

ROOT = Path(__file__).resolve().parents[2]
LIAISON = [str(Path(sys.executable).parent / "liaison")]
PER_MUNICIPALITY = 10


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- a directory scaled up: a fan-out region and a push region of 10-contact municipalities ------


@dataclass
class Scaled:
    data: Path
    signing: dict[str, KeyPair]  # contact -> Ed25519 pair (for tokens)
    regions: dict[str, list[str]]  # region -> municipalities


def add_municipality(
    directory: dict[str, Any], jid: str, parent: str, contacts: int
) -> dict[str, KeyPair]:
    """Add a municipality whose ``contacts`` hold its mayor and community-safety-council roles
    (alternately), each with an Ed25519 and an X25519 key; returns the signing keys."""
    org = f"{jid}.municipality"
    directory["jurisdictions"].append(
        {"id": jid, "name": jid, "level": "municipality", "parent": parent}
    )
    directory["organisations"].append(
        {"id": org, "name": jid, "kind": "municipality", "jurisdiction": jid}
    )
    for kind in ("mayor", "community-safety-council"):
        directory["roles"].append({"id": f"{jid}.{kind}", "organisation": org, "kind": kind})
    signing: dict[str, KeyPair] = {}
    for i in range(contacts):
        cid = f"{jid}-{i}"
        sign, enc = generate("ed25519"), generate("x25519")
        signing[cid] = sign
        directory["contacts"].append(
            {
                "id": cid,
                "name": cid,
                "organisation": org,
                "keys": [
                    {"id": sign.key_id(cid), "type": "ed25519", "public": sign.public_b64},
                    {"id": enc.key_id(cid), "type": "x25519", "public": enc.public_b64},
                ],
            }
        )
        directory["assignments"].append(
            {
                "role": f"{jid}.{'mayor' if i % 2 == 0 else 'community-safety-council'}",
                "contact": cid,
                "as": "holder",
                "from": "2026-01-01T00:00:00Z",
            }
        )
    return signing


def apply_directory(data: Path, directory: dict[str, Any]) -> None:
    (data / "directory.yaml").write_text(
        yaml.safe_dump(directory, allow_unicode=True, sort_keys=False)
    )
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
        env={**os.environ, "LIAISON_LIMITS_MAX_DIRECTORY_BYTES": str(10**9)},
    )


def scaled_data(data: Path, regions: dict[str, int]) -> Scaled:
    """Add regions of municipalities, each with PER_MUNICIPALITY contacts, to an initialised
    demo data directory, and apply it."""
    directory = yaml.safe_load((data / "directory.yaml").read_text())
    signing: dict[str, KeyPair] = {}
    made: dict[str, list[str]] = {}
    for region, municipalities in regions.items():
        directory["jurisdictions"].append(
            {"id": region, "name": region, "level": "region", "parent": "mk"}
        )
        made[region] = [f"{region}-{m}" for m in range(municipalities)]
        for jid in made[region]:
            signing |= add_municipality(directory, jid, region, PER_MUNICIPALITY)
    apply_directory(data, directory)
    return Scaled(data, signing, made)


# -- live clients ---------------------------------------------------------------------------------


@dataclass
class Listeners:
    receipts: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    connected: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def tokens(url: str, scaled: Scaled, contacts: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    queue = list(contacts)
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            while queue:
                contact = queue.pop()
                pair = scaled.signing[contact]
                assertion = make_assertion(
                    pair.private,  # type: ignore[arg-type]
                    contact=contact,
                    kid=pair.key_id(contact),
                    audience=url,
                    now=datetime.now(UTC),
                )
                body = {
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": assertion,
                }
                async with http.post(f"{url}/v1/token", json=body) as response:
                    out[contact] = (await response.json())["access_token"]

        await asyncio.gather(*(worker() for _ in range(16)))
    return out


async def listen(http: aiohttp.ClientSession, url: str, token: str, into: Listeners) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
    async with http.get(f"{url}/v1/stream", headers=headers, timeout=timeout) as response:
        into.connected += 1
        async for line in response.content:
            if line.startswith(b"data: "):
                into.receipts[json.loads(line[6:])["notice_id"]].append(time.perf_counter())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def connect(
    url: str, pid: int, scaled: Scaled, contacts: list[str], http: aiohttp.ClientSession
) -> tuple[Listeners, dict[str, float]]:
    issued = await tokens(url, scaled, contacts)
    await asyncio.sleep(1)
    before = rss_kib(pid)
    into = Listeners()
    for contact in contacts:
        into.tasks.append(asyncio.create_task(listen(http, url, issued[contact], into)))
    deadline = time.monotonic() + 120
    while into.connected < len(contacts) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # let the broker's allocations settle
    after = rss_kib(pid)
    return into, {
        "clients": into.connected,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "kib_per_connection": (after - before) / max(1, into.connected),
    }


def signed_post(url: str, body: bytes, key: Any, keyid: str) -> dict[str, str]:
    """Headers of a notice POST signed as an agency (RFC 9421), with a fresh idempotency key."""
    headers = {
        "Content-Type": "application/json",
        "Content-Digest": content_digest(body),
        "Idempotency-Key": secrets.token_hex(8),
    }
    headers.update(
        sign_request(
            method="POST",
            url=url,
            headers=headers,
            key=key,
            keyid=keyid,
            created=int(time.time()),
            components=("@method", "@target-uri", "content-type", "content-digest"),
        )
    )
    return headers


class Poster:
    """Signs and posts threat assessments as the national police (mk-bjb)."""

    def __init__(self, url: str, data: Path, http: aiohttp.ClientSession) -> None:
        self.url = f"{url}/v1/notices"
        self.pair = read_private_key(data / "keys" / "mk-bjb.pem")
        self.keyid = self.pair.key_id("mk-bjb")
        self.http = http
        self.example = json.loads((ROOT / "policies/examples/threat-assessment.json").read_text())

    async def post(self, jurisdiction: str) -> tuple[str, float, float]:
        body = json.dumps({**self.example, "jurisdiction": jurisdiction}).encode()
        headers = signed_post(self.url, body, self.pair.private, self.keyid)
        started = time.perf_counter()
        async with self.http.post(self.url, data=body, headers=headers) as response:
            answer = await response.json()
            if response.status != 201:
                raise RuntimeError(f"post refused: {response.status} {answer}")
        return answer["id"], started, time.perf_counter()


async def fan_out(
    poster: Poster, into: Listeners, region: str, expected: int, runs: int = 3
) -> dict[str, float]:
    commits, lasts, received = [], [], []
    for _ in range(runs):
        notice_id, started, answered = await poster.post(region)
        deadline = time.monotonic() + 30
        while len(into.receipts[notice_id]) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        times = into.receipts[notice_id]
        commits.append((answered - started) * 1000)
        lasts.append((max(times) - started) * 1000 if times else float("nan"))
        received.append(len(times))
        await asyncio.sleep(1)
    return {
        "recipients": expected,
        "received": min(received),
        "commit_ms": statistics.median(commits),
        "last_receipt_ms": statistics.median(lasts),
    }


async def push(
    poster: Poster, into: Listeners, municipalities: list[str], rate: float, seconds: float
) -> dict[str, float]:
    rng = random.Random(5)
    sent: list[tuple[str, float]] = []
    commits: list[float] = []
    tasks = []

    async def one(jid: str) -> None:
        notice_id, started, answered = await poster.post(jid)
        sent.append((notice_id, started))
        commits.append((answered - started) * 1000)

    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(rng.choice(municipalities))))
    await asyncio.gather(*tasks)
    await asyncio.sleep(3)
    latencies = [
        (t - started) * 1000 for notice_id, started in sent for t in into.receipts[notice_id]
    ]
    expected = len(sent) * PER_MUNICIPALITY
    return {
        "notices": len(sent),
        "rate": rate,
        "receipts": len(latencies),
        "missing": expected - len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "commit_p50_ms": percentile(commits, 0.50),
        "commit_p99_ms": percentile(commits, 0.99),
    }


# -- growth: the store filled with notices before intake and inbox reads are measured again --------


def fill_store(
    db_path: Path, count: int, contacts: list[tuple[str, str, str]], *, start: int = 0
) -> float:
    """Insert ``count`` acknowledged notices (two deliveries and three wraps each) straight into
    a SQLite store; returns the seconds taken. ``contacts``: (contact, role, jurisdiction)."""
    from sqlalchemy import create_engine, insert

    from broker.store.tables import DeliveryRow, NoticeRow, WrapRow

    engine = create_engine(f"sqlite:///{db_path}")
    now = datetime.now(UTC)
    started = time.perf_counter()
    chunk = 20_000
    with engine.begin() as conn:
        for base in range(start, start + count, chunk):
            notices, wraps, deliveries = [], [], []
            for i in range(base, min(start + count, base + chunk)):
                nid = f"grow{i:012d}"
                at = now - timedelta(days=170) + timedelta(seconds=(i * 37) % (170 * 86400))
                notices.append(
                    {
                        "id": nid,
                        "sender_id": "mk-bjb",
                        "sender_key_id": "k",
                        "channel": "threat-assessment",
                        "jurisdiction_id": contacts[0][2],
                        "severity": "medium",
                        "marking": "AMBER",
                        "policy_hash": "sha256:x",
                        "kind": "notice",
                        "addressees": "[]",
                        "status": "active",
                        "created_at": at,
                        "retain_until": at + timedelta(days=180),
                        "recipient_count": 2,
                        "aead": "xchacha20poly1305-ietf",
                        "aead_nonce": b"n" * 24,
                        "ciphertext": b"c" * 600,
                        "content_digest": "d",
                        "signature_input": "s",
                        "signature": "s",
                        "signed_values": "{}",
                    }
                )
                for contact, role, jurisdiction in contacts[:2]:
                    wraps.append(
                        {
                            "notice_id": nid,
                            "recipient_id": contact,
                            "key_id": "k",
                            "wrap": b"w" * 80,
                        }
                    )
                    deliveries.append(
                        {
                            "notice_id": nid,
                            "contact_id": contact,
                            "role_id": role,
                            "jurisdiction_id": jurisdiction,
                            "rule": "local-leadership",
                            "policy_ids": "[]",
                            "deputy": False,
                            "state": "acknowledged",
                            "created_at": at,
                            "delivered_at": at,
                            "read_at": at,
                            "acked_at": at,
                            "escalation_level": 0,
                        }
                    )
                wraps.append(
                    {
                        "notice_id": nid,
                        "recipient_id": "broker-escrow",
                        "key_id": "k",
                        "wrap": b"w" * 80,
                    }
                )
            conn.execute(insert(NoticeRow.__table__), notices)  # type: ignore[attr-defined]
            conn.execute(insert(WrapRow.__table__), wraps)  # type: ignore[attr-defined]
            conn.execute(insert(DeliveryRow.__table__), deliveries)  # type: ignore[attr-defined]
    engine.dispose()
    return time.perf_counter() - started


async def inbox_reads(url: str, token: str, reads: int = 50) -> dict[str, float]:
    latencies = []
    async with aiohttp.ClientSession() as http:
        for _ in range(reads):
            started = time.perf_counter()
            async with http.get(
                f"{url}/v1/inbox?limit=50", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)}


# -- audit appends ----------------------------------------------------------------------------------


async def audit_appends(workdir: Path, seconds: float) -> dict[str, float]:
    """Durable appends per second, one event per transaction, as refusals and reads append."""
    from broker.audit.events import AuditEvent
    from broker.store import audit_repo
    from broker.store.engine import create_engine, migrate

    engine = create_engine(f"sqlite+aiosqlite:///{workdir / 'audit-bench.db'}")
    await migrate(engine)
    event = AuditEvent(
        at=datetime.now(UTC),
        actor="contact:bench",
        action="audit.read",
        object="audit:log",
        request="r",
    )
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        await audit_repo.append_events(engine, [event])
        count += 1
    batch, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        await audit_repo.append_events(engine, [event] * 50)
        batch += 50
    await engine.dispose()
    return {"single_per_s": count / seconds, "batched_50_per_s": batch / seconds}


# -- the medallion TAXII 2.1 server: the closest installable information-sharing peer -------------

MEDALLION_DATA = {
    "/discovery": {
        "title": "bench",
        "description": "bench",
        "default": "http://127.0.0.1/api1/",
        "api_roots": ["http://127.0.0.1/api1/"],
    },
    "api1": {
        "information": {
            "title": "api1",
            "description": "bench",
            "max_content_length": 9765625,
            "versions": ["application/taxii+json;version=2.1"],
        },
        "status": [],
        "collections": [
            {
                "id": "91a7b528-80eb-42ed-a74d-c6fbd5a26116",
                "title": "bench",
                "description": "bench",
                "can_read": True,
                "can_write": True,
                "media_types": ["application/stix+json;version=2.1"],
                "objects": [],
                "manifest": [],
            }
        ],
    },
}


def medallion_env(cache: Path) -> Path | None:
    """A virtual environment with medallion and gunicorn (made once, kept in ``cache``)."""
    venv = cache / "medallion-venv"
    gunicorn = venv / "bin" / "gunicorn"
    if gunicorn.exists():
        return venv
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "medallion>=3", "gunicorn"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return venv


async def medallion(
    venv: Path, workdir: Path, port: int, seconds: float, concurrency: int
) -> dict[str, float]:
    (workdir / "medallion-data.json").write_text(json.dumps(MEDALLION_DATA))
    (workdir / "medallion.json").write_text(
        json.dumps(
            {
                "backend": {
                    "module": "medallion.backends.memory_backend",
                    "module_class": "MemoryBackend",
                    "filename": str(workdir / "medallion-data.json"),
                },
                "users": {"bench": "bench-password"},
                "taxii": {"max_page_size": 100},
            }
        )
    )
    (workdir / "medallion_app.py").write_text(
        f"from medallion import load_app\napp = load_app({str(workdir / 'medallion.json')!r})\n"
    )
    server = subprocess.Popen(
        [
            str(venv / "bin" / "gunicorn"),
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--chdir",
            str(workdir),
            "medallion_app:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/objects/"
    headers = {
        "Content-Type": "application/taxii+json;version=2.1",
        "Accept": "application/taxii+json;version=2.1",
        "Authorization": "Basic " + base64.b64encode(b"bench:bench-password").decode(),
    }
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        stamps: list[float] = []
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as http:

            async def worker() -> None:
                while time.monotonic() < deadline:
                    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                    obj = {
                        "type": "indicator",
                        "spec_version": "2.1",
                        "id": f"indicator--{uuid.uuid4()}",
                        "created": now,
                        "modified": now,
                        "name": "bench",
                        "pattern_type": "stix",
                        "pattern": "[ipv4-addr:value = '198.51.100.1']",
                        "valid_from": now,
                    }
                    async with http.post(url, json={"objects": [obj]}, headers=headers) as response:
                        await response.read()
                        if response.status == 202:
                            stamps.append(time.monotonic())

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        start = deadline - seconds
        first = sum(1 for t in stamps if t < start + seconds / 4) / (seconds / 4)
        last = sum(1 for t in stamps if t >= deadline - seconds / 4) / (seconds / 4)
        return {
            "rate": len(stamps) / seconds,
            "first_quarter_rate": first,
            "last_quarter_rate": last,
            "objects": len(stamps),
        }
    finally:
        server.terminate()
        server.wait(timeout=20)
