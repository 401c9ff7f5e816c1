"""Shredding destroys: attacker = the broker's own host after the fact (a stolen disk or copy of
the data directory, THREATS.md), who looks for a shredded notice's bytes in the store's files.

A real `liaison serve` on a real SQLite data directory: notices expire, the shredder runs on its
configured interval, and then no byte sequence of a destroyed ciphertext or wrap is left in any
file of the data directory (database, WAL, shared memory, anything). A read after ``expires_at``
answers 410 at once, before the shredder has run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.client.errors import RecipientError
from adapters.client.sender import SenderClient
from broker.clock import FrozenClock
from broker.crypto.keys import read_private_key
from broker.http.keys import SHREDDER
from tests.conftest import fresh_pg_database
from tests.integration.intake_support import example, running_broker
from tests.support import output, run_cli, serve_process

MAYOR = "mk-kumanovo-mayor"
PCVE = "mk-kumanovo-pcve"


def _alert(expires_at: str) -> dict[str, Any]:
    """A public-safety alert large enough that its ciphertext spills onto SQLite overflow pages."""
    return {
        "channel": "public-safety-alert",
        "jurisdiction": "mk-kumanovo",
        "severity": "high",
        "subject": "Road closure near the school",
        "expires_at": expires_at,
        "body": {
            "event": "Closure",
            "urgency": "Immediate",
            "certainty": "Observed",
            "cap_identifier": secrets.token_hex(8),
            "description": secrets.token_hex(2000),
            "instruction": secrets.token_hex(1000),
        },
    }


def _fragments(secret: bytes, size: int = 16, step: int = 8) -> Iterator[bytes]:
    """Every `size`-byte window at a multiple of `step`: any surviving run of 24 bytes hits one."""
    for start in range(0, max(len(secret) - size, 0) + 1, step):
        yield secret[start : start + size]


def _secrets_of(db: Path, notice_ids: list[str]) -> dict[str, list[bytes]]:
    """Each notice's ciphertext and wraps as stored, read from the database file directly."""
    found: dict[str, list[bytes]] = {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for notice_id in notice_ids:
            [(ciphertext,)] = conn.execute(
                "select ciphertext from notice where id = ?", (notice_id,)
            ).fetchall()
            wraps = conn.execute(
                "select wrap from notice_wrap where notice_id = ?", (notice_id,)
            ).fetchall()
            found[notice_id] = [bytes(ciphertext), *(bytes(w) for (w,) in wraps)]
    conn.close()
    return found


def _remnants(data: Path, items: list[bytes]) -> list[str]:
    """Which files of the data directory still hold a fragment of any of the items."""
    hits = []
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        content = path.read_bytes()
        if any(f in content for item in items for f in _fragments(item)):
            hits.append(str(path.relative_to(data)))
    return hits


def _events(log: str) -> list[str]:
    names = []
    for line in log.splitlines():
        try:
            names.append(str(json.loads(line).get("event")))
        except (ValueError, AttributeError):
            continue
    return names


async def _wait_until(check: Any, what: str, seconds: float = 90, detail: Any = None) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what} {detail or ''}")
        await asyncio.sleep(0.2)


async def test_after_a_shred_no_byte_of_ciphertext_or_wraps_is_left_in_any_file(
    demo_dir: Path,
) -> None:
    agency = read_private_key(demo_dir / "keys" / "mk-mvr.pem", expected="ed25519")
    env = {"LIAISON_RETENTION_SHRED_INTERVAL_SECONDS": "1"}
    with serve_process(demo_dir, env=env) as (proc, url):
        expires = (datetime.now(UTC) + timedelta(seconds=4)).isoformat().replace("+00:00", "Z")
        async with SenderClient.from_pem(url, agency.pem(), agency.key_id("mk-mvr")) as sender:
            doomed = [
                str((await sender.post_notice(_alert(expires))).body["id"]),
                str(
                    (
                        await sender.post_notice(
                            {**example("returnee-repatriation"), "expires_at": expires}
                        )
                    ).body["id"]
                ),
            ]
            kept = str((await sender.post_notice(example("returnee-repatriation"))).body["id"])
            stored = _secrets_of(demo_dir / "liaison.db", [*doomed, kept])
            assert all(len(items) >= 3 for items in stored.values())  # ciphertext, wraps, escrow

            async def shredded() -> bool:
                states = [(await sender.status(n)).body["status"] for n in doomed]
                return states == ["shredded", "shredded"]

            await _wait_until(shredded, "the shredder to destroy both notices")

        destroyed = [item for n in doomed for item in stored[n]]
        left: list[str] = []

        async def gone_from_every_file() -> bool:
            left[:] = _remnants(demo_dir, destroyed)
            return not left

        # The shred round purges the store's history right after it commits; bytes once gone
        # do not come back, so the first clean scan proves the point.
        await _wait_until(gone_from_every_file, "the shredded bytes to leave", 30, left)
        assert left == []
        assert "shred_purged" in _events(output(proc))
        # The scan finds what is still there: the notice that was not shredded.
        assert _remnants(demo_dir, stored[kept][:1]) != []
        assert proc.poll() is None


async def test_a_read_after_expires_at_answers_410_before_the_shredder_runs(
    demo_dir: Path,
) -> None:
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    url = f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
    async with running_broker(demo_dir, url, clock=clock) as broker:  # no workers: no shredder
        expires = (clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        async with broker.sender("mk-mvr", clock) as sender:
            notice = {**example("returnee-repatriation"), "expires_at": expires}
            notice_id = str((await sender.post_notice(notice)).body["id"])
        async with broker.recipient(PCVE, clock) as client:
            await client.read(notice_id)
            clock.advance(timedelta(hours=1))  # exactly at expires_at
            with pytest.raises(RecipientError) as caught:
                await client.read(notice_id)
        assert caught.value.status == 410
        assert caught.value.problem["type"].endswith("/gone")
        # Not shredded yet: the refusal comes from the time, not from missing bytes.
        assert await broker.scalar(
            "select ciphertext is not null from notice where id = :id", id=notice_id
        )


async def _pg_table_files(url: str) -> bytes:
    """The bytes of the notice and wrap tables' files (heap and TOAST), as on disk after a
    checkpoint: what a thief of the PostgreSQL data directory reads."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
        rows = await conn.fetch(
            "select pg_read_binary_file(pg_relation_filepath(c.oid)) as data from pg_class c"
            " where c.oid in (select oid from pg_class where relname in ('notice', 'notice_wrap')"
            " union select reltoastrelid from pg_class where relname = 'notice')"
        )
        return b"".join(bytes(r["data"]) for r in rows)
    finally:
        await conn.close()


def _found(content: bytes, items: list[bytes]) -> bool:
    return any(f in content for item in items for f in _fragments(item))


@pytest.mark.postgres
async def test_on_postgresql_a_shred_leaves_bytes_in_the_table_files_until_store_purge(
    demo_dir: Path,
) -> None:
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    async with fresh_pg_database() as url, running_broker(demo_dir, url, clock=clock) as broker:
        expires = (clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        async with broker.sender("mk-mvr", clock) as sender:
            doomed = str((await sender.post_notice(_alert(expires))).body["id"])
            kept = str((await sender.post_notice(example("returnee-repatriation"))).body["id"])
        items = {}
        for notice_id in (doomed, kept):
            [row] = await broker.rows("select ciphertext from notice where id = :i", i=notice_id)
            wraps = await broker.rows(
                "select wrap from notice_wrap where notice_id = :i", i=notice_id
            )
            items[notice_id] = [bytes(row.ciphertext), *(bytes(w.wrap) for w in wraps)]
        clock.advance(timedelta(hours=2))
        assert await broker.app[SHREDDER].tick(clock.now()) == 1
        # What the engine does by itself: the destroyed tuples' bytes are still in the files
        # (VACUUM would only mark the space free). This is why the operator's purge exists.
        assert _found(await _pg_table_files(url), items[doomed])
        result = run_cli("store", "purge", "--data", demo_dir, env={"LIAISON_DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
        after = await _pg_table_files(url)
        assert not _found(after, items[doomed])
        assert _found(after, items[kept][:1])  # the scan sees what is still there
