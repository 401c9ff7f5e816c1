"""A peer broker killed with SIGKILL in the middle of forwarding, and restarted: every notice
that crossed is delivered there once, nothing leaks (issue 20, "Done when").

Two `liaison serve` processes on loopback, each its own `liaison init --demo` directory with a
peer file naming the other (the pair of tests/integration/test_federation_forward.py): Kosovo
(A) forwards, North Macedonia (B) receives. A Kosovo agency posts a bounded number of returnee
notices for Kumanovo; once B holds the first of them, B is killed with -9 (whatever forward or
answer was in flight is cut: a notice B committed whose 201 never reached A is the case that
would double), the rest are posted while B is down (A's outbox meets the outage and backs off),
and B is restarted on the same port. Then, counted on both stores: each notice once on B (one
notice row, one crossing, one ``notice.received_from_peer``), each forward row on A sent once,
deliveries on B only in Kumanovo and none on A, the subject's marker in clear nowhere (data
directories, logs), and both audit logs verify.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.client.sender import SenderClient
from broker.service.setup import init_data_dir
from tests.fault.harness import (
    SCALE,
    BrokerProcess,
    Figures,
    Op,
    _plaintext_places,
    marker,
    post_one,
    sender,
    verify_audit,
)
from tests.integration.test_federation_forward import Side, peer_file

NOTICES = 24 * SCALE  # bounded: posted in two halves, the second while the peer is down
ENV = {
    "LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1",
    "LIAISON_WEBHOOKS_MAX_BACKOFF_SECONDS": "2",
}
SECONDS = 90  # the bound on every wait of the test


def count(db: Path, sql: str, ids: list[str], *, objects: bool = False) -> int:
    """``sql`` with ``{ids}`` standing for the notice ids (or ``notice:<id>`` audit objects)."""
    values = [f"notice:{i}" for i in ids] if objects else ids
    query = sql.replace("{ids}", ",".join("?" * len(values)))
    with sqlite3.connect(db, timeout=10) as conn:
        return int(conn.execute(query, values).fetchone()[0])


def held(side: Side, ids: list[str]) -> int:
    """How many of ``ids`` the side's store holds (notice rows)."""
    return count(side.data / "liaison.db", "SELECT count(*) FROM notice WHERE id IN ({ids})", ids)


FORWARDS = "SELECT count(*) FROM outbox WHERE kind = 'peer' AND msg_id IN ({ids})"
WAITING = FORWARDS + " AND attempts >= 1 AND state != 'sent'"
SENT = FORWARDS + " AND state = 'sent'"


def received(side: Side) -> int:
    return count(side.data / "liaison.db", "SELECT count(*) FROM federation_crossing", [])


async def until(check: Any, what: str, seconds: float = SECONDS, step: float = 0.05) -> float:
    """Poll ``check`` until it holds (bounded); how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(step)
    raise AssertionError(f"not within {seconds} s: {what}")


async def post(client: SenderClient, mark: str, prefix: str, n: int) -> list[Op]:
    """``n`` returnee notices for Kumanovo, one idempotency key each, every outcome kept."""
    overrides = {"jurisdiction": "mk-kumanovo"}
    return [
        await post_one(client, f"{prefix}-{i}", "xk-aki", "returnee-repatriation", mark, overrides)
        for i in range(n)
    ]


async def test_a_peer_killed_mid_forward_and_restarted_gets_every_notice_once(
    tmp_path: Path, figures: Figures
) -> None:
    a, b = Side(tmp_path / "xk"), Side(tmp_path / "mk")
    for side in (a, b):
        await init_data_dir(side.data, demo=True, now=datetime.now(UTC), environ={})
    a_broker, b_broker = BrokerProcess(a.data, ENV), BrokerProcess(b.data, ENV, figures)
    a.url, b.url = a_broker.url, b_broker.url
    for side, peer, title, other, direction, places in (
        (a, "mk", "Broker of North Macedonia", b, "send", "mk-kumanovo"),
        (b, "xk", "Broker of Kosovo", a, "receive", "mk"),
    ):
        (side.data / "policies" / "peers").mkdir()
        (side.data / "policies" / "peers" / f"{peer}.yaml").write_text(
            peer_file(peer, title, other.url, other.card(), direction, places)
        )
    mark = marker()
    b_broker.start()
    a_broker.start()
    try:
        async with sender(a.data, a.url, "xk-aki") as client:
            load = asyncio.create_task(post(client, mark, "n", NOTICES))
            # The peer dies as soon as it holds a few forwarded notices: the next are in
            # flight, queued, or answered on a connection about to be cut; the rest are posted
            # while it is down.
            await until(lambda: received(b) >= 3, "the first forwards")
            b_broker.kill()
            figures.faults += 1
            cut = received(b)
            ops = await load
        ids = [op.notice_id for op in ops if op.notice_id]
        a_db, b_db = a.data / "liaison.db", b.data / "liaison.db"
        await until(lambda: count(a_db, WAITING, ids) >= 1, "a forward meeting the outage")
        down = time.monotonic()
        b_broker.start()  # same port, same store
        await until(lambda: held(b, ids) == len(ids), "every notice at the peer")
        figures.recoveries.append(("peer restart to all delivered", time.monotonic() - down))
        await until(lambda: count(a_db, SENT, ids) == len(ids), "every forward marked sent")
        await asyncio.sleep(2)  # a late second copy would land now
    finally:
        a_broker.stop()
        b_broker.stop()
    figures.add(ops)
    assert all(op.outcome == "ok" for op in ops), [op for op in ops if op.outcome != "ok"]
    assert 3 <= cut < len(ids), f"the peer was killed mid-forward ({cut} of {len(ids)})"
    on_b = {
        "notices": count(b_db, "SELECT count(*) FROM notice WHERE id IN ({ids})", ids),
        "crossings": count(
            b_db,
            "SELECT count(*) FROM federation_crossing WHERE direction = 'receive' "
            "AND peer_notice_id IN ({ids})",
            ids,
        ),
        "received": count(
            b_db,
            "SELECT count(*) FROM audit_event WHERE action = 'notice.received_from_peer' "
            "AND object IN ({ids})",
            ids,
            objects=True,
        ),
    }
    on_a = {
        "notices": count(a_db, "SELECT count(*) FROM notice WHERE id IN ({ids})", ids),
        "crossings": count(
            a_db,
            "SELECT count(*) FROM federation_crossing WHERE direction = 'send' "
            "AND notice_id IN ({ids})",
            ids,
        ),
        "forwards": count(a_db, FORWARDS, ids),
    }
    figures.lost = len(ids) - min(on_b["notices"], len(ids))
    figures.duplicated = max(on_b["received"], on_b["crossings"]) - len(ids)
    assert on_b == dict.fromkeys(on_b, len(ids)), on_b
    assert on_a == dict.fromkeys(on_a, len(ids)), on_a
    # No one outside policy: the peer delivered in Kumanovo only; the sender to no one.
    deliveries = "SELECT count(*) FROM delivery WHERE notice_id IN ({ids})"
    strays = count(b_db, deliveries + " AND contact_id NOT LIKE 'mk-kumanovo%'", ids)
    here = count(a_db, deliveries, ids)
    reached = count(b_db, deliveries, ids)
    plaintext = _plaintext_places(a.data, mark, a_broker.output()) + _plaintext_places(
        b.data, mark, b_broker.output()
    )
    figures.leaked = strays + here + len(plaintext)
    assert reached >= len(ids) and strays == 0 and here == 0, (reached, strays, here)
    assert not plaintext, f"the notice subject in clear in: {plaintext}"
    for side in (a, b):
        verify_audit(side.data, {})
