"""A commit whose answer is lost: the broker never says "not stored" about a notice it may have
stored.

When the connection to PostgreSQL drops after COMMIT was sent, the server may have made the
transaction durable before it went (a ``kill -9`` of the server, a network cut, a failover). A
503 ``store_unavailable`` then would be a lie a client acts on. The broker reads the request's
idempotency record instead: found, the 201 it earned; unreadable, 503 ``commit_in_doubt``, which
tells the client to send it again under the same key — and that retry gets the stored notice,
never a second one.

A real `liaison serve` on loopback talks to this machine's PostgreSQL through a proxy that reads
the wire protocol: on the connection that inserted a notice it forwards COMMIT, lets the server
answer, and drops the connection instead of passing the answer on — exactly what the broker sees
when the server dies between writing its commit record and replying.

The client's side of it: ``SenderClient`` marks an error ``may_be_stored`` when an attempt was
cut off after it was sent (a broker stopped with SIGSTOP, so the request sits in its socket) or
answered ``commit_in_doubt``, never when the connection was refused; ``liaison send`` then
prints the key to send it again with.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import text

from adapters.client.sender import SenderClient, SenderError
from broker.crypto.keys import read_private_key
from broker.store.engine import create_engine
from tests.integration.test_scaleout import EXAMPLE, sender, shared_db  # noqa: F401 - fixture
from tests.support import TcpProxy, free_port, output, run_cli, serve_off_loop, serve_process

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
NOTICE = Path(__file__).resolve().parents[2] / "policies/examples/returnee-repatriation.json"


class CommitEatingProxy(TcpProxy):
    """A PostgreSQL proxy that loses the answer to the COMMIT of a transaction that inserted a
    notice: the server commits, the client's connection drops before it hears so.

    ``deliver=False``: the COMMIT itself is lost instead (the server rolls back), which the
    broker cannot tell from the above. It speaks just enough of the protocol: the start-up packet (an SSL or GSS request is
    answered "no" here, so the rest is plain), then typed messages. Parse names which statement
    inserts into ``notice``; a Bind or simple Query that runs one marks the connection; its next
    COMMIT is forwarded, its answer read and discarded, and both sides closed. ``then_cut``: the
    proxy also stops accepting connections at that moment, as a database that went down does.
    """

    def __init__(self, upstream_port: int, *, then_cut: bool = False, deliver: bool = True) -> None:
        super().__init__(upstream_port)
        self.then_cut = then_cut
        self.deliver = deliver  # False: the COMMIT itself is lost, so nothing is committed
        self.armed = False
        self.eaten = asyncio.Event()

    async def _relay(self, reader: Any, writer: Any, up_reader: Any, up_writer: Any) -> None:
        lose_answer = asyncio.Event()

        async def client_to_server() -> None:
            inserts: set[bytes] = set()  # names of prepared statements that insert a notice
            wrote_notice = False
            try:
                while True:  # the start-up packet: untyped
                    head = await reader.readexactly(8)
                    length, code = struct.unpack("!ii", head)
                    rest = await reader.readexactly(length - 8)
                    if code in (SSL_REQUEST, GSSENC_REQUEST):
                        writer.write(b"N")
                        await writer.drain()
                        continue
                    up_writer.write(head + rest)
                    break
                while True:
                    kind = await reader.readexactly(1)
                    (length,) = struct.unpack("!i", await reader.readexactly(4))
                    body = await reader.readexactly(length - 4)
                    if kind == b"P":  # Parse: statement name, query
                        name, query = body.split(b"\0")[:2]
                        if _inserts_notice(query):
                            inserts.add(name)
                    elif kind == b"B":  # Bind: portal, statement name
                        if body.split(b"\0")[1] in inserts:
                            wrote_notice = True
                    elif kind == b"Q":
                        query = body.rstrip(b"\0")
                        if _inserts_notice(query):
                            wrote_notice = True
                        elif self.armed and wrote_notice and query.upper().startswith(b"COMMIT"):
                            self.armed = False
                            lose_answer.set()
                            if not self.deliver:  # the server never sees it: it rolls back
                                up_writer.transport.abort()
                                writer.transport.abort()
                                self.eaten.set()
                                return
                        elif query.upper().startswith((b"COMMIT", b"ROLLBACK")):
                            wrote_notice = False
                    up_writer.write(kind + struct.pack("!i", length) + body)
                    await up_writer.drain()
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                up_writer.close()

        async def server_to_client() -> None:
            try:
                while data := await up_reader.read(65536):
                    if lose_answer.is_set():  # the server's answer to COMMIT: read, not passed on
                        break
                    writer.write(data)
                    await writer.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                if lose_answer.is_set():
                    if self.then_cut:
                        await self.cut()
                    writer.transport.abort()  # a reset, as from a server that died
                    up_writer.close()
                    self.eaten.set()
                writer.close()

        await asyncio.gather(client_to_server(), server_to_client())


def _inserts_notice(query: bytes) -> bool:
    return query.lstrip().upper().startswith((b'INSERT INTO "NOTICE" ', b"INSERT INTO NOTICE "))


async def _stored(db_url: str, key: str) -> list[str]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("select notice_id from idempotency where key = :key"), {"key": key}
            )
            ids = [r[0] for r in result]
            notices = await conn.execute(
                text("select count(*) from notice where id = any(:ids)"), {"ids": ids}
            )
            assert notices.scalar() == len(ids)
            return ids
    finally:
        await engine.dispose()


@asynccontextmanager
async def _behind(
    proxy: CommitEatingProxy, demo_dir: Path, db_url: str
) -> AsyncIterator[tuple[Any, str]]:
    """A real ``liaison serve`` whose database is reached through ``proxy`` (started here)."""
    await proxy.start()
    parts = urlsplit(db_url)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    env = {"LIAISON_DATABASE_URL": urlunsplit(parts._replace(netloc=netloc))}
    async with serve_off_loop(demo_dir, env=env) as served:
        yield served


async def _post_in_doubt(ministry: SenderClient, proxy: CommitEatingProxy, key: str) -> Any:
    """Post a notice whose COMMIT the proxy loses; the problem document the broker answered."""
    proxy.armed = True
    with pytest.raises(SenderError) as caught:
        await ministry.post_notice(EXAMPLE, idempotency_key=key)
    assert proxy.eaten.is_set(), "the proxy never saw the notice's COMMIT"
    assert caught.value.status == 503, caught.value.problem
    return caught.value.problem


@pytest.mark.postgres
async def test_a_lost_commit_answer_is_resolved_to_the_201_it_earned(
    demo_dir: Path,
    shared_db: str,  # noqa: F811 - the fixture
) -> None:
    proxy = CommitEatingProxy(urlsplit(shared_db).port or 5432)
    async with _behind(proxy, demo_dir, shared_db) as (proc, url):
        async with sender(demo_dir, url) as ministry:
            proxy.armed = True
            first = await ministry.post_notice(EXAMPLE, idempotency_key="answer-lost")
            assert proxy.eaten.is_set(), "the proxy never saw the notice's COMMIT"
            assert first.status == 201
            assert not first.replayed  # its first answer, not a replay
            again = await ministry.post_notice(EXAMPLE, idempotency_key="answer-lost")
            assert again.body["id"] == first.body["id"]
            assert again.replayed
        log = [json.loads(line) for line in output(proc).splitlines() if line.startswith("{")]
    await proxy.cut()
    assert await _stored(shared_db, "answer-lost") == [first.body["id"]]
    resolved = [e for e in log if e.get("event") == "commit_resolved"]
    assert [e["notice_id"] for e in resolved] == [first.body["id"]]


@pytest.mark.postgres
async def test_a_commit_in_doubt_is_a_503_that_says_so_and_the_retry_settles_it(
    demo_dir: Path,
    shared_db: str,  # noqa: F811 - the fixture
) -> None:
    proxy = CommitEatingProxy(urlsplit(shared_db).port or 5432, then_cut=True)
    async with (
        _behind(proxy, demo_dir, shared_db) as (_, url),
        sender(demo_dir, url) as ministry,
    ):
        problem = await _post_in_doubt(ministry, proxy, "in-doubt")
        assert problem["code"] == "commit_in_doubt", problem
        assert "same Idempotency-Key" in problem["detail"]
        # The server did commit: the store holds it, once, whatever the broker could say.
        assert len(await _stored(shared_db, "in-doubt")) == 1
        await proxy.restore()
        retry = None
        for _ in range(50):  # the pool reconnects by itself
            try:
                retry = await ministry.post_notice(EXAMPLE, idempotency_key="in-doubt")
                break
            except SenderError:
                await asyncio.sleep(0.2)
        assert retry is not None and retry.status == 201
    await proxy.cut()
    assert await _stored(shared_db, "in-doubt") == [retry.body["id"]]


@pytest.mark.postgres
async def test_liaison_send_says_a_notice_may_be_stored_and_names_the_key_that_settles_it(
    demo_dir: Path,
    shared_db: str,  # noqa: F811 - the fixture
) -> None:
    proxy = CommitEatingProxy(urlsplit(shared_db).port or 5432, then_cut=True)
    common = ("--data", demo_dir, "--as", "mk-mvr")
    async with _behind(proxy, demo_dir, shared_db) as (_, url):
        proxy.armed = True
        # The client's own retries meet a store that is down: their 503s settle nothing.
        sent = await asyncio.to_thread(
            run_cli, "send", NOTICE, *common, "--url", url, env={"LIAISON_LANG": "mk"}
        )
        assert proxy.eaten.is_set(), "the proxy never saw the notice's COMMIT"
        assert sent.returncode != 0 and sent.stdout == ""
        line = sent.stderr.strip()
        assert len(line.splitlines()) == 1, line
        assert "можеби е зачувано" in line, line  # the official's language
        key = re.search(r"--idempotency-key (\S+)", line)
        assert key is not None, line
        assert len(await _stored(shared_db, key[1])) == 1  # it was: the server committed it
        await proxy.restore()
        again = await asyncio.to_thread(
            run_cli, "send", NOTICE, *common, "--url", url, "--idempotency-key", key[1]
        )
    await proxy.cut()
    assert again.returncode == 0, again.stderr
    assert "the earlier answer to the same idempotency key" in again.stdout
    assert len(await _stored(shared_db, key[1])) == 1


async def test_a_post_cut_off_after_it_was_sent_may_be_stored_and_one_never_sent_is_not(
    demo_dir: Path,
) -> None:
    pair = read_private_key(demo_dir / "keys" / "mk-mvr.pem")

    def client(url: str) -> SenderClient:
        return SenderClient.from_pem(url, pair.pem(), pair.key_id("mk-mvr"), retries=0, timeout=1)

    async with client(f"http://127.0.0.1:{free_port()}") as nowhere:  # nothing listens there
        with pytest.raises(SenderError) as refused:
            await nowhere.post_notice(EXAMPLE, idempotency_key="never-sent")
    assert refused.value.status is None and not refused.value.may_be_stored

    with serve_process(demo_dir) as (proc, url):
        os.kill(proc.pid, signal.SIGSTOP)  # the request reaches its socket; no answer comes
        try:
            async with client(url) as ministry:
                with pytest.raises(SenderError) as cut_off:
                    await ministry.post_notice(EXAMPLE, idempotency_key="cut-off")
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert cut_off.value.may_be_stored and cut_off.value.idempotency_key == "cut-off"
        async with sender(demo_dir, url) as ministry:  # the broker runs again: settle it
            first = await ministry.post_notice(EXAMPLE, idempotency_key="cut-off")
            again = await ministry.post_notice(EXAMPLE, idempotency_key="cut-off")
    assert first.status == again.status == 201 and again.replayed
    assert first.body["id"] == again.body["id"]  # one notice, whichever request stored it


@pytest.mark.postgres
async def test_a_commit_in_doubt_that_did_not_commit_is_no_refusal_and_its_retry_stores_it(
    demo_dir: Path,
    shared_db: str,  # noqa: F811 - the fixture
) -> None:
    proxy = CommitEatingProxy(urlsplit(shared_db).port or 5432, deliver=False)
    async with (
        _behind(proxy, demo_dir, shared_db) as (_, url),
        sender(demo_dir, url) as ministry,
    ):
        problem = await _post_in_doubt(ministry, proxy, "never-committed")
        # The store answers and holds no record: still in doubt, for the broker cannot know
        # whether the server committed before the connection went.
        assert problem["code"] == "commit_in_doubt", problem
        assert await _stored(shared_db, "never-committed") == []
        retry = await ministry.post_notice(EXAMPLE, idempotency_key="never-committed")
        assert retry.status == 201 and not retry.replayed
    await proxy.cut()
    assert await _stored(shared_db, "never-committed") == [retry.body["id"]]
    engine = create_engine(shared_db)
    try:
        async with engine.connect() as conn:
            refused = await conn.execute(
                text("select count(*) from audit_event where action = 'notice.refused'")
            )
            # Nothing says "refused" of a notice that may have been stored.
            assert refused.scalar() == 0
    finally:
        await engine.dispose()
