"""Two real brokers on loopback: a notice crosses the border, exactly once, end to end.

Broker A plays Kosovo, broker B North Macedonia; each is its own `liaison init --demo` data
directory (its own broker, escrow, agency and administrator keys) with a peer file naming the
other. A Kosovo agency posts a returnee notice for Kumanovo on A; A forwards it; B routes it
by its own policy; Kumanovo's recipient on B decrypts it and verifies the Kosovo agency's
signature against A's directory, under A's root pinned for the peer. B is reached through a
TCP proxy the test cuts (an outage) and restores.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.client.errors import VerificationFailed
from adapters.client.recipient import RecipientClient
from adapters.client.sender import SenderClient, SenderError
from adapters.client.trust import PinnedRoot
from broker.config import load_settings
from broker.crypto import purpose_keys
from broker.crypto.keys import KeyPair, generate, read_private_key
from broker.federation.forward import PATH, crossing_payload, signed_headers
from broker.federation.origin import root_pin
from broker.service.custody import load_escrow_key
from broker.service.setup import init_data_dir
from tests.conftest import POLICIES
from tests.support import TcpProxy, output, serve_process

ENV = {"LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1", "LIAISON_WEBHOOKS_MAX_BACKOFF_SECONDS": "1"}


@dataclass
class Side:
    data: Path
    url: str = ""

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data / "liaison.db", timeout=10)

    def scalar(self, sql: str, *params: Any) -> Any:
        with self.db() as conn:
            return conn.execute(sql, params).fetchone()[0]

    def broker_key(self) -> KeyPair:
        return purpose_keys.broker_key(load_settings(self.data, {}), {})

    def card(self) -> dict[str, str]:
        settings = load_settings(self.data, {})
        return {
            "broker_key": base64.b64encode(self.broker_key().public_raw).decode(),
            "escrow_key": base64.b64encode(load_escrow_key(settings, {}).public_raw).decode(),
            "directory_root": root_pin((self.data / "trust" / "root.json").read_bytes()),
        }

    def sender(self, agency: str) -> SenderClient:
        pair = read_private_key(self.data / "keys" / f"{agency}.pem", expected="ed25519")
        return SenderClient.from_pem(self.url, pair.pem(), pair.key_id(agency), retries=0)

    def recipient(self, contact: str, peer_roots: dict[str, str] | None) -> RecipientClient:
        keys = self.data / "keys"
        return RecipientClient(
            self.url,
            contact,
            read_private_key(keys / f"{contact}.pem", expected="ed25519"),
            read_private_key(keys / f"{contact}.x25519.pem", expected="x25519"),
            trust=PinnedRoot.from_file(self.data / "trust" / "root.json"),
            peer_roots=peer_roots,
        )


def peer_file(
    peer: str, title: str, url: str, card: dict[str, str], direction: str, places: str
) -> str:
    return f"""id: {peer}
kind: national
title: {title}
url: {url}
country: {peer}
broker_key: {card["broker_key"]}
escrow_key: {card["escrow_key"]}
directory_root: {card["directory_root"]}
agreement:
  id: xk-mk-2026-returnees
  bilateral: true
  valid_from: 2026-01-01T00:00:00Z
  valid_until: 2030-01-01T00:00:00Z
  crossings:
    - channel: returnee-repatriation
      direction: {direction}
      organisation_kinds: [security-service, ministry-interior]
      jurisdictions: [{places}]
      markings: [AMBER+STRICT]
"""


@dataclass
class Pair:
    a: Side  # Kosovo
    b: Side  # North Macedonia
    proxy: TcpProxy  # A reaches B through it
    logs: tuple[Any, Any] = (None, None)


@pytest.fixture
async def brokers(tmp_path: Path) -> AsyncIterator[Pair]:
    now = datetime.now(UTC)
    a, b = Side(tmp_path / "xk"), Side(tmp_path / "mk")
    for side in (a, b):
        await init_data_dir(side.data, demo=True, now=now, environ={})
    proxy = TcpProxy(0)
    a.url = "http://127.0.0.1:9"  # B never sends to A in these tests; set once A listens
    b.url = f"http://127.0.0.1:{proxy.port}"  # what A and the test call B by
    (a.data / "policies" / "peers").mkdir()
    (b.data / "policies" / "peers").mkdir()
    (a.data / "policies" / "peers" / "mk.yaml").write_text(
        peer_file("mk", "Broker of North Macedonia", b.url, b.card(), "send", "mk-kumanovo")
    )
    (b.data / "policies" / "peers" / "xk.yaml").write_text(
        peer_file("xk", "Broker of Kosovo", a.url, a.card(), "receive", "mk")
    )
    with serve_process(b.data, env={**ENV, "LIAISON_SERVER_PUBLIC_URL": b.url}) as (bp, b_real):
        proxy.upstream = ("127.0.0.1", int(b_real.rsplit(":", 1)[1]))
        await proxy.start()
        with serve_process(a.data, env=ENV) as (ap, a_url):
            a.url = a_url
            try:
                yield Pair(a, b, proxy, (ap, bp))
            finally:
                await proxy.cut()


def returnee() -> dict[str, Any]:
    document = json.loads((POLICIES / "examples" / "returnee-repatriation.json").read_text())
    document["jurisdiction"] = "mk-kumanovo"
    return document


async def until(check: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("not within time")


def delivered(side: Side, notice_id: str) -> bool:
    return bool(side.scalar("SELECT count(*) FROM notice WHERE id = ?", notice_id))


async def test_a_kosovo_notice_reaches_kumanovo_and_verifies_against_kosovo(
    brokers: Pair,
) -> None:
    a, b = brokers.a, brokers.b
    document = returnee()
    async with a.sender("xk-aki") as client:
        answer = (await client.post_notice(document)).body
    notice_id = answer["id"]
    assert answer["forwarded"]["peer"] == "mk" and answer["recipient_count"] == 0
    try:
        await until(lambda: delivered(b, notice_id))
    except AssertionError:
        raise AssertionError(
            a.db().execute("SELECT state, attempts, last_error FROM outbox").fetchall(),
            output(brokers.logs[1])[-3000:],
        ) from None
    assert a.scalar(
        "SELECT state FROM outbox WHERE notice_id = ? AND kind = 'peer'", notice_id
    ) == ("sent")
    assert a.scalar("SELECT count(*) FROM delivery WHERE notice_id = ?", notice_id) == 0
    contacts = [
        r[0]
        for r in b.db().execute("SELECT contact_id FROM delivery WHERE notice_id = ?", (notice_id,))
    ]
    assert contacts and all(c.startswith("mk-kumanovo") for c in contacts)
    pin = a.card()["directory_root"]
    async with b.recipient(contacts[0], {"xk": pin}) as reader:
        verified = await reader.read(notice_id)
    assert verified.notice["body"] == document["body"]
    assert verified.sender_key_id == read_private_key(a.data / "keys" / "xk-aki.pem").key_id(
        "xk-aki"
    )
    # Without a pin for the peer, a foreign notice is never shown as verified.
    async with b.recipient(contacts[0], None) as reader:
        with pytest.raises(VerificationFailed, match="has not pinned"):
            await reader.read(notice_id)
    events = [
        r[0]
        for r in b.db().execute(
            "SELECT action FROM audit_event WHERE object = ?", (f"notice:{notice_id}",)
        )
    ]
    assert events.count("notice.received_from_peer") == 1 and "escrow.used" in events
    sent = [
        r[0]
        for r in a.db().execute(
            "SELECT action FROM audit_event WHERE object = ?", (f"notice:{notice_id}",)
        )
    ]
    assert "notice.forward_queued" in sent and "notice.forwarded" in sent


async def test_a_crossing_the_agreement_refuses_is_403_with_the_reason(brokers: Pair) -> None:
    hate = json.loads((POLICIES / "examples" / "hate-incident.json").read_text())
    hate["jurisdiction"] = "mk-kumanovo"
    async with brokers.a.sender("xk-kp") as client:
        with pytest.raises(SenderError) as refused:
            await client.post_notice(hate)
    assert refused.value.status == 403
    assert refused.value.problem["reason"] == "no agreement with mk for hate-incident (to send)"
    assert brokers.a.scalar("SELECT count(*) FROM federation_crossing") == 0


async def test_a_peer_outage_delays_and_never_loses_or_doubles(brokers: Pair) -> None:
    a, b = brokers.a, brokers.b
    await brokers.proxy.cut()
    ids = []
    async with a.sender("xk-aki") as client:
        for _ in range(3):
            ids.append((await client.post_notice(returnee())).body["id"])
    await until(lambda: a.scalar("SELECT min(attempts) FROM outbox WHERE kind = 'peer'") >= 2, 20)
    assert b.scalar("SELECT count(*) FROM notice") == 0
    await brokers.proxy.restore()
    await until(lambda: all(delivered(b, i) for i in ids))
    await asyncio.sleep(2)  # a late duplicate would land now
    for notice_id in ids:
        assert b.scalar("SELECT count(*) FROM notice WHERE id = ?", notice_id) == 1
        assert (
            b.scalar(
                "SELECT count(*) FROM audit_event WHERE action = 'notice.received_from_peer' "
                "AND object = ?",
                f"notice:{notice_id}",
            )
            == 1
        )
    assert a.scalar("SELECT count(*) FROM outbox WHERE kind = 'peer' AND state = 'sent'") == 3
    assert b.scalar("SELECT count(*) FROM federation_crossing WHERE direction = 'receive'") == 3
    # The forwarder's retry after a lost answer: the same notice again is the same answer.
    status, body = await forward_again(a, b, ids[0], a.broker_key())
    assert status == 200 and body["peer_notice_id"] == ids[0]
    assert b.scalar("SELECT count(*) FROM notice") == 3


async def forward_again(
    a: Side, b: Side, notice_id: str, key: KeyPair, alter: Any = None
) -> tuple[int, dict[str, Any]]:
    """Send A's stored notice to B as A's forwarder does (signed with ``key``)."""
    with a.db() as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM notice WHERE id = ?", (notice_id,)).fetchone())
        wrap = dict(
            conn.execute(
                "SELECT * FROM notice_wrap WHERE notice_id = ? AND recipient_id = 'peer:mk'",
                (notice_id,),
            ).fetchone()
        )
    for name in ("created_at", "expires_at"):
        row[name] = datetime.fromisoformat(row[name]) if row[name] else None
    payload = crossing_payload(
        row,
        wrap,
        "security-service",
        (a.data / "trust" / "root.json").read_bytes(),
        (a.data / "trust" / "bindings.json").read_bytes(),
    )
    body = json.dumps(payload).encode()
    url = b.url + PATH
    headers = signed_headers(url, body, notice_id, key, datetime.now(UTC))
    if alter is not None:
        body = alter(payload)
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_forged_crossings_are_refused_and_audited(brokers: Pair) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        notice_id = (await client.post_notice(returnee())).body["id"]
    await until(lambda: delivered(b, notice_id))
    # Deleting B's copy lets the same notice be offered again, by forgers.
    with b.db() as conn:
        for table in ("delivery", "notice_wrap", "federation_crossing", "outbox"):
            conn.execute(f"DELETE FROM {table} WHERE notice_id = ?", (notice_id,))  # noqa: S608
        conn.execute("DELETE FROM notice WHERE id = ?", (notice_id,))
    status, problem = await forward_again(a, b, notice_id, generate("ed25519"))
    assert status == 401 and problem["code"] == "authentication_failed"

    def altered(payload: dict[str, Any]) -> bytes:
        payload["jurisdiction"] = "mk-lipkovo"
        return json.dumps(payload).encode()

    status, problem = await forward_again(a, b, notice_id, a.broker_key(), altered)
    assert status == 401, problem
    # Signed by A, but a different ciphertext (a bit flipped): the bytes do not open.
    with a.db() as conn:
        conn.execute(
            "UPDATE notice SET ciphertext = ? WHERE id = ?",
            (b"\x00" * 64, notice_id),
        )
    status, problem = await forward_again(a, b, notice_id, a.broker_key())
    assert status == 403 and "does not open" in problem["reason"]
    assert not delivered(b, notice_id)
    assert (
        b.scalar(
            "SELECT count(*) FROM audit_event WHERE action IN "
            "('federation.refused', 'auth.refused_summary', 'notice.receive_refused')"
        )
        >= 2
    )


async def test_a_notice_the_receiving_broker_forges_fails_the_recipients_check(
    brokers: Pair,
) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        notice_id = (await client.post_notice(returnee())).body["id"]
    await until(lambda: delivered(b, notice_id))
    contact = b.scalar("SELECT contact_id FROM delivery WHERE notice_id = ?", notice_id)
    # B's host swaps the origin for its own directory (which binds a key it could sign with).
    with b.db() as conn:
        conn.execute(
            "UPDATE federation_crossing SET origin_root = ?, origin_bindings = ? "
            "WHERE notice_id = ?",
            (
                (b.data / "trust" / "root.json").read_bytes(),
                (b.data / "trust" / "bindings.json").read_bytes(),
                notice_id,
            ),
        )
    async with b.recipient(contact, {"xk": a.card()["directory_root"]}) as reader:
        with pytest.raises(VerificationFailed, match="not the pinned"):
            await reader.read(notice_id)
    # ... or drops the origin, passing the notice off as a local one: B's own bindings hold
    # B's xk-aki key, not the one that signed.
    with b.db() as conn:
        conn.execute("DELETE FROM federation_crossing WHERE notice_id = ?", (notice_id,))
    async with b.recipient(contact, {"xk": a.card()["directory_root"]}) as reader:
        with pytest.raises(VerificationFailed):
            await reader.read(notice_id)
