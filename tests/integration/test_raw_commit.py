"""The raw group writers store exactly what the SQLAlchemy statements stored.

The same ``NoticeWrite`` values go through ``intake_repo.commit_notices`` / ``commit_notice`` (the
engine's path, kept as the reference) into one store and through the raw writer of its backend
(``SqliteGroupWriter``, ``AsyncpgGroupWriter``) into another; then every row of every table is
compared, each value by SQLite's ``quote()`` (type and bytes) or PostgreSQL's row text. The conflicts are played too: a batch with a replayed nonce stores nothing and names
``BatchConflict``; alone, each notice gets the answer it gets on the engine's path.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.audit.events import GENESIS, AuditEvent
from broker.audit.merkle import CompactRange, leaf_hash
from broker.domain.writes import IdempotentAnswer, KeyWrap, NewDelivery, NewNotice, NonceUse
from broker.errors import StoreUnavailable
from broker.store import deliveries_repo, intake_repo
from broker.store.engine import create_engine, migrate
from broker.store.group_writer import EngineWriter, GroupWriter, group_writer
from broker.store.intake_repo import BatchConflict, IdempotencyRace, NonceReplayed, NoticeWrite
from broker.store.pg_writer import AsyncpgGroupWriter
from broker.store.rows import notice_write
from broker.store.sqlite_writer import SqliteGroupWriter
from tests.conftest import fresh_pg_database

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
SKOPJE = timezone(timedelta(hours=1))  # an aware non-UTC time: stored as UTC either way


def _write(n: int, *, nonce: str | None = None, cancels: str | None = None) -> NoticeWrite:
    notice_id = f"ntc-{n:04d}"
    notice = NewNotice(
        id=notice_id,
        sender="mk-mvr",
        sender_key_id="mk-mvr-key",
        channel="public-safety",
        jurisdiction="mk-kumanovo",
        severity="high",
        marking="TLP:AMBER",
        policy_hash="sha256:00",
        kind="cancel" if cancels else "notice",
        supersedes=cancels,
        addressees=("r-duty", "Кумановo"),
        requesting_role=None if n % 2 else "r-duty",
        in_reply_to=None,
        created_at=NOW + timedelta(microseconds=n),
        expires_at=None if n % 3 else (NOW + timedelta(days=1)).astimezone(SKOPJE),
        retain_until=NOW + timedelta(days=30),
        recipient_count=2,
        aead="xchacha20poly1305",
        aead_nonce=bytes(range(24)),
        ciphertext=b"\x00sealed\xff" * n,
        content_digest="sha-256=:AA==:",
        signature_input='sig1=("@method");keyid="mk-mvr-key"',
        signature="sig1=:AA==:",
        signed_values={"@method": "POST", "content-type": "application/json"},
    )
    deliveries = [
        NewDelivery("c-ana", "r-duty", "mk-kumanovo", "duty", ("p-1", "p-2"), False),
        NewDelivery("c-boris", "r-duty", "mk-kumanovo", "duty", (), True),
    ]
    wraps = [KeyWrap("c-ana", "k-ana", b"w-ana"), KeyWrap("escrow", "k-escrow", b"\x00" * 48)]
    answer = IdempotentAnswer("mk-mvr", f"idem-{n}", "00" * 32, notice_id, {"id": notice_id}, NOW)
    audit = [
        AuditEvent(NOW, "agency:mk-mvr", "notice.posted", f"notice:{notice_id}", request="r-1"),
        AuditEvent(
            NOW,
            "broker",
            "notice.routed",
            f"notice:{notice_id}",
            channel="public-safety",
            policies=("p-1",),
            # A non-ASCII key and a float: rfc8785's path, not orjson's (broker/audit/events.py).
            details={
                "role": "Кумановo — дежурство",
                "n": 2**53 - 1,
                "share": 0.25,
                "дежурство": True,
            },
        ),
    ]
    outbox = [
        {
            "notice_id": notice_id,
            "contact_id": "c-ana",
            "kind": "webhook",
            "target": "hook-1",
            "msg_id": f"msg-{n}",
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": NOW,
            "created_at": NOW,
        }
    ]
    return notice_write(
        notice,
        wraps,
        deliveries,
        NonceUse("mk-mvr-key", nonce or f"nonce-{n}", NOW + timedelta(minutes=5)),
        answer if n % 2 else None,
        cancels=cancels,
        audit=audit,
        outbox=outbox,
    )


@dataclass
class Pair:
    """Two empty stores of one backend: one for the engine's path, one for the raw writer."""

    reference: AsyncEngine
    raw: AsyncEngine
    writer: GroupWriter
    dump: Callable[[AsyncEngine], Awaitable[dict[str, list[tuple[Any, ...]]]]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def two(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            urls = [f"sqlite+aiosqlite:///{tmp_path / name}" for name in ("ref.db", "raw.db")]
            dump: Any = _sqlite_dump
        else:
            urls = [
                await stack.enter_async_context(fresh_pg_database("postgresql+asyncpg"))
                for _ in range(2)
            ]
            dump = _pg_dump
        reference, raw = create_engine(urls[0]), create_engine(urls[1])
        stack.push_async_callback(reference.dispose)
        stack.push_async_callback(raw.dispose)
        await migrate(reference)
        await migrate(raw)
        writer = group_writer(raw)
        assert isinstance(writer, SqliteGroupWriter | AsyncpgGroupWriter)
        stack.push_async_callback(writer.close)
        yield Pair(reference, raw, writer, dump)


async def _sqlite_dump(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, each value as SQLite quotes it (its type and exact bytes)."""
    with sqlite3.connect(_path(engine)) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        dump = {}
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            quoted = ", ".join(f'quote("{c}")' for c in columns)
            # Names from the schema itself, not from input.
            select = f'SELECT {quoted} FROM "{table}" ORDER BY rowid'  # noqa: S608
            dump[table] = list(conn.execute(select))
    return dump


async def _pg_dump(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in PostgreSQL's own text form (bytea as hex, exact timestamps)."""
    async with engine.connect() as conn:
        await conn.execute(text("SET TIME ZONE 'UTC'"))
        tables = (
            await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            )
        ).scalars()
        dump = {}
        for table in list(tables):
            # Names from the catalogue itself, not from input.
            select = f'SELECT t::text FROM "{table}" t ORDER BY 1'  # noqa: S608
            dump[table] = [tuple(r) for r in (await conn.execute(text(select))).all()]
    return dump


def _path(engine: AsyncEngine) -> str:
    assert engine.url.database is not None
    return engine.url.database


async def _both(
    reference: AsyncEngine,
    writer: GroupWriter,
    writes: Sequence[NoticeWrite],
    *,
    batch: bool,
) -> None:
    if batch:
        await intake_repo.commit_notices(reference, writes)
        await writer.commit_notices(writes)
    else:
        for write in writes:
            await intake_repo.commit_notice(reference, write)
            await writer.commit_notice(write)


async def test_batches_and_single_commits_store_the_rows_sqlalchemy_stored(two: Pair) -> None:
    await _both(two.reference, two.writer, [_write(n) for n in range(1, 7)], batch=True)
    await _both(two.reference, two.writer, [_write(7), _write(8, cancels="ntc-0001")], batch=False)
    await _both(two.reference, two.writer, [_write(9), _write(10, cancels="ntc-0002")], batch=True)
    expected, got = await two.dump(two.reference), await two.dump(two.raw)
    assert expected.keys() == got.keys()
    for table in expected:
        assert got[table] == expected[table], table
    assert len(got["audit_event"]) == 20 and len(got["delivery"]) == 20
    assert sum(1 for r in got["notice"] if "cancelled" in str(r)) == 2


async def test_the_raw_writer_s_log_chains_and_its_head_holds_the_root(two: Pair) -> None:
    await two.writer.commit_notices([_write(n) for n in range(1, 4)])
    await two.writer.commit_notice(_write(4))
    async with two.raw.connect() as conn:
        rows = (
            await conn.execute(text("SELECT seq, body, leaf FROM audit_event ORDER BY seq"))
        ).all()
        head = (await conn.execute(text("SELECT size, last_leaf, frontier FROM audit_head"))).one()
    prev, tree = GENESIS, CompactRange.load(0, [])
    for seq, body, leaf in rows:
        record = json.loads(body)
        assert (record["seq"], record["prev"]) == (seq, prev)
        assert bytes(leaf) == leaf_hash(body.encode())
        tree.append(bytes(leaf))
        prev = bytes(leaf).hex()
    assert (head.size, head.last_leaf) == (8, prev)
    assert CompactRange.load(head.size, json.loads(head.frontier)).root() == tree.root()


async def test_a_conflict_gets_the_answer_the_engine_gives(two: Pair) -> None:
    await _both(two.reference, two.writer, [_write(1)], batch=True)
    replay = _write(2, nonce="nonce-1")
    for commit in (EngineWriter(two.reference), two.writer):
        with pytest.raises(BatchConflict):
            await commit.commit_notices([_write(3), replay])
        with pytest.raises(NonceReplayed):
            await commit.commit_notice(replay)
        raced = _write(5)  # then another notice with notice 5's idempotency key
        await commit.commit_notice(raced)
        clash = NoticeWrite(
            {**raced.notice, "id": "ntc-other"},
            [],
            [],
            {**raced.nonce, "nonce": "fresh"},
            {**(raced.idempotency or {}), "notice_id": "ntc-other"},
        )
        with pytest.raises(IdempotencyRace):
            await commit.commit_notice(clash)
        taken = NoticeWrite(raced.notice, [], [], {**raced.nonce, "nonce": "x"})
        with pytest.raises(StoreUnavailable):  # a notice id taken: no one expects that
            await commit.commit_notice(taken)
    assert await two.dump(two.raw) == await two.dump(two.reference)


async def test_a_locked_sqlite_file_is_store_unavailable_and_the_writer_recovers(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'liaison.db'}")
    await migrate(engine)
    writer = SqliteGroupWriter(_path(engine), engine.dialect, timeout=0.05)  # not 30 s here
    blocker = sqlite3.connect(_path(engine), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as caught:
            await writer.commit_notice(_write(1))
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        blocker.execute("ROLLBACK")
        await writer.commit_notice(_write(1))
    finally:
        blocker.close()
        await writer.close()
        await engine.dispose()
    assert len((await _sqlite_dump(engine))["notice"]) == 1


async def test_delivered_marks_store_what_the_engine_s_marks_store(two: Pair) -> None:
    """Live push's "delivered" marks through the raw writer: the same rows and audit events as
    ``deliveries_repo.mark_delivered``, a delivery marked once, a read or acknowledged one
    keeping its state, and the events in the engine's order whatever order the ids came in."""
    writes = [_write(n) for n in range(1, 9)]
    await _both(two.reference, two.writer, writes, batch=True)
    for engine in (two.reference, two.raw):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE delivery SET state = 'acknowledged' WHERE id = 3"))
            await conn.execute(text("UPDATE delivery SET state = 'read' WHERE id = 4"))

    def events_for(changed: list[int]) -> list[AuditEvent]:
        return [
            AuditEvent(NOW, "broker", "notice.delivered", f"delivery:{i}", channel="push")
            for i in changed
        ]

    on_the_second = NOW.replace(microsecond=0)  # SQLite's text keeps the .000000 all the same
    rounds = [
        ([5, 1, 3, 4, 99], NOW),
        ([1, 2, 5], NOW),
        # Past one query's 500 ids, and an id twice in two of them (two streams of a contact).
        ([*range(12, 6, -1), *range(1000, 1600), 8, 12, 6], on_the_second),
        (list(range(16, 0, -1)), NOW),
    ]
    for ids, at in rounds:
        expected = await deliveries_repo.mark_delivered(two.reference, ids, at, events_for)
        got = await two.writer.mark_delivered(ids, at, events_for)
        assert got == expected
    assert await two.dump(two.raw) == await two.dump(two.reference)
    async with two.raw.connect() as conn:
        states = dict((await conn.execute(text("SELECT id, state FROM delivery"))).all())
        marked = (
            await conn.execute(
                text("SELECT count(*) FROM audit_event WHERE action = 'notice.delivered'")
            )
        ).scalar()
    assert (states[1], states[3], states[4]) == ("delivered", "acknowledged", "read")
    assert marked == 16  # each delivery once
    assert await two.writer.mark_delivered([], NOW, events_for) == []


async def test_a_cancelled_caller_keeps_the_write_turn_until_its_transaction_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's thread runs on when its caller is cancelled (a request dropped, shutdown):
    the turn stays taken until the transaction ends, so no other writer of this process meets
    the file's lock in SQLite's busy handler meanwhile."""
    import asyncio
    import threading

    from broker.store.boundary import write_turn

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turn.db'}")
    await migrate(engine)
    writer = group_writer(engine)
    assert isinstance(writer, SqliteGroupWriter)
    release, entered = threading.Event(), threading.Event()
    real = writer._mark

    def slow(*args: Any) -> list[int]:
        entered.set()
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(writer, "_mark", slow)
    try:
        task = asyncio.create_task(writer.mark_delivered([1], NOW, lambda _: []))
        await asyncio.to_thread(entered.wait, 10)  # the transaction is running on its thread
        task.cancel()
        await asyncio.sleep(0.05)
        assert write_turn(engine).locked()  # type: ignore[attr-defined]
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not write_turn(engine).locked()  # type: ignore[attr-defined]
    finally:
        release.set()
        await writer.close()
        await engine.dispose()
