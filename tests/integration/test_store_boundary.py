"""The store's one boundary: driver errors become ``StoreUnavailable``, expected conflicts do not.

Real databases only: a SQLite file, this machine's PostgreSQL, a SQLite path that cannot be
opened and a PostgreSQL port nobody listens on. The conflicts are real uniqueness violations
raised by the database, through the store functions that rely on them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import StoreUnavailable
from broker.store import audit_repo, deliveries_repo, directory_repo, escalation_repo, intake_repo
from broker.store.boundary import connection, fetch_all, transaction
from broker.store.engine import create_engine, migrate, ping
from broker.store.intake_repo import (
    BatchConflict,
    IdempotencyRace,
    NonceReplayed,
    NoticeWrite,
    delivery_t,
    nonce_t,
    notice_t,
)
from tests.conftest import NOW
from tests.support import free_port

LATER = NOW + timedelta(minutes=5)


@pytest.fixture
async def unmigrated(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A reachable database without Liaison's tables: every statement on them is refused."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def _nonce(value: str) -> dict[str, Any]:
    return {"key_id": "mk-mvr-key", "nonce": value, "expires_at": LATER}


async def _insert_nonces(
    engine: AsyncEngine,
    *values: str,
    conflict: type[Exception] | None = None,
    then: BaseException | None = None,
) -> None:
    """Insert the nonces one statement each in one ``transaction``; raise ``then`` at its end."""
    async with transaction(engine, conflict=conflict) as conn:
        for value in values:
            await conn.execute(insert(nonce_t), [_nonce(value)])
        if then is not None:
            raise then


async def _nonces(engine: AsyncEngine) -> set[str]:
    return {r.nonce for r in await fetch_all(engine, select(nonce_t.c.nonce))}


async def _count(engine: AsyncEngine, table: Any) -> int:
    async with connection(engine) as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)


def _write(notice_id: str, nonce: str, idempotency_key: str | None = None) -> NoticeWrite:
    """The rows one accepted notice writes, with one recipient (and no audit events)."""
    notice = {
        "id": notice_id,
        "sender_id": "mk-mvr",
        "sender_key_id": "mk-mvr-key",
        "channel": "public-safety",
        "jurisdiction_id": "mk-kumanovo",
        "severity": "high",
        "marking": "TLP:AMBER",
        "policy_hash": "sha256:00",
        "kind": "notice",
        "addressees": "[]",
        "status": "active",
        "created_at": NOW,
        "retain_until": NOW + timedelta(days=30),
        "recipient_count": 1,
        "aead": "xchacha20poly1305",
        "ciphertext": b"sealed",
        "content_digest": "sha-256=:AA==:",
        "signature_input": "sig1=()",
        "signature": "sig1=:AA==:",
        "signed_values": "{}",
    }
    wrap = {"notice_id": notice_id, "recipient_id": "c-ana", "key_id": "k-ana", "wrap": b"w"}
    delivery = {
        "notice_id": notice_id,
        "contact_id": "c-ana",
        "role_id": "r-duty",
        "jurisdiction_id": "mk-kumanovo",
        "rule": "duty",
        "policy_ids": "[]",
        "state": "pending",
        "created_at": NOW,
    }
    idempotency = None
    if idempotency_key is not None:
        idempotency = {
            "sender_id": "mk-mvr",
            "key": idempotency_key,
            "request_hash": "00" * 32,
            "notice_id": notice_id,
            "response": "{}",
            "created_at": NOW,
        }
    return NoticeWrite(notice, [wrap], [delivery], _nonce(nonce), idempotency)


# -- driver errors become StoreUnavailable -----------------------------------------------------


async def test_a_statement_the_database_refuses_is_store_unavailable(
    unmigrated: AsyncEngine,
) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        await _insert_nonces(unmigrated, "n-1")
    assert isinstance(caught.value.__cause__, DBAPIError)
    assert caught.value.message == "database unavailable"


async def test_store_functions_on_a_database_without_their_tables_are_store_unavailable(
    unmigrated: AsyncEngine,
) -> None:
    with pytest.raises(StoreUnavailable):
        await intake_repo.record_nonce(unmigrated, "mk-mvr-key", "n-1", LATER)
    with pytest.raises(StoreUnavailable):
        await deliveries_repo.inbox(unmigrated, "c-ana", before=None, limit=10)
    with pytest.raises(StoreUnavailable) as directory:
        await directory_repo.current_revision(unmigrated)
    assert directory.value.message == "database unreachable"  # the directory's word, as before


async def test_a_dropped_socket_inside_a_transaction_rolls_back_as_store_unavailable(
    engine: AsyncEngine,
) -> None:
    dropped = ConnectionResetError("peer went away")  # what a driver lets through raw
    with pytest.raises(StoreUnavailable) as caught:
        await _insert_nonces(engine, "n-1", then=dropped)
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert await _nonces(engine) == set()


async def test_a_sqlite_file_that_cannot_be_opened_is_store_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'liaison.db'}")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await intake_repo.purge_nonces(engine, NOW)
        assert isinstance(caught.value.__cause__, DBAPIError)
        with pytest.raises(StoreUnavailable):
            await audit_repo.size(engine)
        with pytest.raises(StoreUnavailable) as directory:
            await directory_repo.load_directory(engine)
        assert directory.value.message == "database unreachable"
        assert not await ping(engine)
    finally:
        await engine.dispose()
        await _aiosqlite_threads_finished()


async def _aiosqlite_threads_finished() -> None:
    """aiosqlite stops a connection that failed to open on its worker thread, which then calls
    back into the loop: wait (at most 10 s each) for those threads to end before the loop closes."""
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(thread.join, 10)
            assert not thread.is_alive(), "an aiosqlite worker thread did not stop"


async def test_a_postgresql_port_nobody_listens_on_is_store_unavailable() -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            async with transaction(engine):
                pass
        assert isinstance(caught.value.__cause__, OSError)  # asyncpg's refused connect, raw
        with pytest.raises(StoreUnavailable):
            await intake_repo.get_notice(engine, "n-1")
        with pytest.raises(StoreUnavailable):
            await escalation_repo.open_deliveries(engine, ["public-safety"])
        assert not await ping(engine)
    finally:
        await engine.dispose()


# -- conflicts the store expects are not outages -----------------------------------------------


async def test_a_conflict_caught_in_a_savepoint_lets_the_transaction_commit(
    engine: AsyncEngine,
) -> None:
    async with transaction(engine) as conn:
        await conn.execute(insert(nonce_t), [_nonce("n-1")])
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await conn.execute(insert(nonce_t), [_nonce("n-1")])
        await conn.execute(insert(nonce_t), [_nonce("n-2")])
    assert await _nonces(engine) == {"n-1", "n-2"}


async def test_a_named_conflict_rolls_back_and_raises_what_the_caller_named(
    engine: AsyncEngine,
) -> None:
    class Clash(Exception):
        pass

    with pytest.raises(Clash) as caught:
        await _insert_nonces(engine, "n-1", "n-1", conflict=Clash)
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert await _nonces(engine) == set()


async def test_a_conflict_no_one_expects_is_store_unavailable(engine: AsyncEngine) -> None:
    await intake_repo.record_nonce(engine, "mk-mvr-key", "n-1", LATER)
    with pytest.raises(StoreUnavailable) as caught:
        await _insert_nonces(engine, "n-2", "n-1")
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert await _nonces(engine) == {"n-1"}


async def test_a_replayed_nonce_is_nonce_replayed(engine: AsyncEngine) -> None:
    await intake_repo.record_nonce(engine, "mk-mvr-key", "n-1", LATER)
    with pytest.raises(NonceReplayed):
        await intake_repo.record_nonce(engine, "mk-mvr-key", "n-1", LATER)
    assert await _nonces(engine) == {"n-1"}


async def test_a_batch_with_a_replayed_nonce_is_batch_conflict_and_stores_nothing(
    engine: AsyncEngine,
) -> None:
    await intake_repo.commit_notices(engine, [_write("ntc-0", "n-0")])  # the rows are sound
    first, replay = _write("ntc-1", "n-1"), _write("ntc-2", "n-1")
    with pytest.raises(BatchConflict) as caught:
        await intake_repo.commit_notices(engine, [first, replay])
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert await _count(engine, notice_t) == 1 and await _nonces(engine) == {"n-0"}
    # One by one, as intake falls back: the first commits, the replay is named for what it is.
    await intake_repo.commit_notice(engine, first)
    with pytest.raises(NonceReplayed):
        await intake_repo.commit_notice(engine, replay)
    assert await _count(engine, notice_t) == 2 and await _count(engine, delivery_t) == 2


async def test_a_raced_idempotency_key_is_idempotency_race(engine: AsyncEngine) -> None:
    await intake_repo.commit_notice(engine, _write("ntc-1", "n-1", idempotency_key="idem-1"))
    with pytest.raises(IdempotencyRace):
        await intake_repo.commit_notice(engine, _write("ntc-2", "n-2", idempotency_key="idem-1"))
    assert await _count(engine, notice_t) == 1 and await _nonces(engine) == {"n-1"}


async def test_a_recipient_who_already_has_the_notice_is_skipped_not_refused(
    engine: AsyncEngine,
) -> None:
    write = _write("ntc-1", "n-1")
    await intake_repo.commit_notice(engine, write)
    again = dict(write.deliveries[0])
    other = {**again, "contact_id": "c-boris"}
    wrap = {"notice_id": "ntc-1", "recipient_id": "c-boris", "key_id": "k-boris", "wrap": b"w"}
    ids = await escalation_repo.add_recipients(
        engine, notice_id="ntc-1", deliveries=[again, other], wraps=[wrap], escalated=[], now=NOW
    )
    assert len(ids) == 1
    assert [d.contact for d in await deliveries_repo.deliveries_of(engine, "ntc-1")] == [
        "c-ana",
        "c-boris",
    ]


# -- a COMMIT whose connection is lost: in doubt, judged by its own cause ---------------------


async def _lose_the_session(engine: AsyncEngine, conn: Any) -> None:
    """End this transaction's server session from another connection (a server that goes away,
    a failover); the block then goes on to COMMIT on a dead connection."""
    import asyncpg

    pid = (await conn.execute(select(func.pg_backend_pid()))).scalar()
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def _lose_before_the_end(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await _lose_the_session(engine, conn)
        await conn.execute(insert(nonce_t), [_nonce("after")])


class _LosesTheCommit:
    """A group writer on a real PostgreSQL: the batch meets a real uniqueness conflict; each
    notice alone then writes its nonce and loses its connection before COMMIT."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def commit_notices(self, writes: list[str]) -> None:
        await _insert_nonces(self.engine, "twice", "twice", conflict=BatchConflict)

    async def commit_notice(self, write: str) -> None:
        async with transaction(self.engine) as conn:
            await conn.execute(insert(nonce_t), [_nonce(write)])
            await _lose_the_session(self.engine, conn)

    async def close(self) -> None:
        return None


@pytest.mark.postgres
async def test_a_lost_commit_is_in_doubt_even_right_after_its_batchs_conflict() -> None:
    from broker.errors import CommitInDoubt
    from broker.service.group_commit import CommitBatcher
    from tests.conftest import fresh_pg_database

    async with fresh_pg_database("postgresql+asyncpg") as url:
        engine = create_engine(url)
        await migrate(engine)
        batcher = CommitBatcher(engine)
        batcher.writer = _LosesTheCommit(engine)  # type: ignore[assignment]
        answers = await asyncio.gather(
            batcher.commit("n1"),  # type: ignore[arg-type]
            batcher.commit("n2"),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        # The server ERROR of the batch's conflict says nothing of these COMMITs.
        assert [type(a) for a in answers] == [CommitInDoubt, CommitInDoubt], answers
        # Lost before the block ended: nothing was sent to commit, so that is a plain outage.
        with pytest.raises(StoreUnavailable) as caught:
            await _lose_before_the_end(engine)
        assert not isinstance(caught.value, CommitInDoubt)
        await batcher.close()
        await engine.dispose()
