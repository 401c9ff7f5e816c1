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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from adapters.client.errors import RecipientError, VerificationFailed
from adapters.client.recipient import RecipientClient
from adapters.client.sender import SenderClient, SenderError, decrypt_reply
from adapters.client.trust import PinnedRoot
from broker.config import load_settings
from broker.crypto import purpose_keys
from broker.crypto.envelope import seal, wrap
from broker.crypto.keys import KeyPair, generate, read_private_key
from broker.domain.notice import ack_statement
from broker.federation.forward import PATH, crossing_payload, signed_headers
from broker.federation.origin import root_pin
from broker.federation.replies import crossing_replies
from broker.federation.reporter import STATUS_PATH
from broker.service.custody import load_escrow_key
from broker.service.setup import init_data_dir
from tests.conftest import POLICIES
from tests.integration.intake_support import SUCCESSOR, hand_over_swc
from tests.support import TcpProxy, output, run_cli, serve_process

ENV = {
    "LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1",
    "LIAISON_WEBHOOKS_MAX_BACKOFF_SECONDS": "1",
    "LIAISON_DELIVERY_ESCALATION_INTERVAL_SECONDS": "1",  # the escalation test ages a delivery
}


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
    peer: str,
    title: str,
    url: str,
    card: dict[str, str],
    direction: str,
    places: str,
    extra: str = "",
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
{extra}"""


# A Kumanovo request to Kosovo Police and its answer, each way under the agreement.
REQUESTS_AT_XK = (
    "    - {channel: information-request, direction: send,"
    " organisation_kinds: [police, security-service], jurisdictions: [mk-kumanovo],"
    " markings: [AMBER]}\n"
    "    - {channel: information-request, direction: receive, organisation_kinds: [municipality],"
    " jurisdictions: [xk], markings: [AMBER]}\n"
)
REQUESTS_AT_MK = (
    "    - {channel: information-request, direction: receive,"
    " organisation_kinds: [police, security-service], jurisdictions: [mk], markings: [AMBER]}\n"
    "    - {channel: information-request, direction: send, organisation_kinds: [municipality],"
    " jurisdictions: [xk], markings: [AMBER]}\n"
)


@dataclass
class Pair:
    a: Side  # Kosovo
    b: Side  # North Macedonia
    proxy: TcpProxy  # A reaches B through it
    logs: tuple[Any, Any] = (None, None)
    intruder: KeyPair | None = None  # the broker key of a third declared peer (ba), held here


# One pair of brokers for the module (each test works on its own notices): two `liaison serve`
# processes cost seconds to start, and the suite is over its budget.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def brokers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    now = datetime.now(UTC)
    tmp_path = tmp_path_factory.mktemp("federation")
    a, b = Side(tmp_path / "xk"), Side(tmp_path / "mk")
    for side in (a, b):
        await init_data_dir(side.data, demo=True, now=now, environ={})
    proxy, a_proxy = TcpProxy(0), TcpProxy(0)
    a.url = f"http://127.0.0.1:{a_proxy.port}"  # what B and the test call A by (never cut)
    b.url = f"http://127.0.0.1:{proxy.port}"  # what A and the test call B by
    (a.data / "policies" / "peers").mkdir()
    (b.data / "policies" / "peers").mkdir()
    (a.data / "policies" / "peers" / "mk.yaml").write_text(
        peer_file(
            "mk",
            "Broker of North Macedonia",
            b.url,
            b.card(),
            "send",
            "mk-kumanovo",
            # Allowed by the agreement, refused for its form: a CAP alert does not cross yet.
            "    - {channel: public-safety-alert, direction: send, organisation_kinds: [police],"
            " jurisdictions: [mk-kumanovo], markings: [AMBER]}\n" + REQUESTS_AT_XK,
        )
    )
    # A third peer A declares (Bosnia and Herzegovina), whose key the test holds: it plays a
    # declared peer reporting on a notice that was forwarded to another.
    intruder = generate("ed25519")
    (a.data / "policies" / "peers" / "ba.yaml").write_text(
        peer_file(
            "ba",
            "Broker of Bosnia and Herzegovina",
            "http://127.0.0.1:9",
            {**b.card(), "broker_key": base64.b64encode(intruder.public_raw).decode()},
            "send",
            "ba-sarajevo",
        )
    )
    (b.data / "policies" / "peers" / "xk.yaml").write_text(
        peer_file("xk", "Broker of Kosovo", a.url, a.card(), "receive", "mk", REQUESTS_AT_MK)
    )
    with serve_process(b.data, env={**ENV, "LIAISON_SERVER_PUBLIC_URL": b.url}) as (bp, b_real):
        proxy.upstream = ("127.0.0.1", int(b_real.rsplit(":", 1)[1]))
        await proxy.start()
        with serve_process(a.data, env={**ENV, "LIAISON_SERVER_PUBLIC_URL": a.url}) as (
            ap,
            a_real,
        ):
            a_proxy.upstream = ("127.0.0.1", int(a_real.rsplit(":", 1)[1]))
            await a_proxy.start()
            try:
                yield Pair(a, b, proxy, (ap, bp), intruder)
            finally:
                await proxy.cut()
                await a_proxy.cut()


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
    # B answers once it holds the notice; A marks its outbox row sent when the answer arrives.
    await until(
        lambda: (
            a.scalar("SELECT state FROM outbox WHERE notice_id = ? AND kind = 'peer'", notice_id)
            == "sent"
        )
    )
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
    # The CLI as the official runs it: the pin given as Kosovo's root file (from --data, the
    # peer file's pin is the default); Kumanovo's own root passed off as Kosovo's is refused.
    options = ["--url", b.url, "--data", b.data, "--as", contacts[0]]
    for pinned in (
        [],
        ["--peer-root", f"xk={a.data / 'trust' / 'root.json'}"],
        ["--peer-root", f"xk={pin}"],
    ):
        shown = await asyncio.to_thread(run_cli, "read", notice_id, *options, *pinned)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert document["subject"] in shown.stdout and "REFUSED" not in shown.stderr
    wrong = await asyncio.to_thread(
        run_cli, "read", notice_id, *options, "--peer-root", f"xk={b.data / 'trust' / 'root.json'}"
    )
    assert wrong.returncode == 1 and wrong.stderr.startswith("liaison: REFUSED"), wrong.stderr
    assert document["subject"] not in wrong.stdout
    unreadable = await asyncio.to_thread(run_cli, "read", notice_id, *options, "--peer-root", "xk")
    assert unreadable.returncode == 1
    assert unreadable.stderr == "liaison: --peer-root xk: give PEER=sha256:HEX or PEER=FILE\n"
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
    crossings = brokers.a.scalar("SELECT count(*) FROM federation_crossing")
    async with brokers.a.sender("xk-kp") as client:
        with pytest.raises(SenderError) as refused:
            await client.post_notice(hate)
    assert refused.value.status == 403
    assert refused.value.problem["reason"] == "no agreement with mk for hate-incident (to send)"
    assert brokers.a.scalar("SELECT count(*) FROM federation_crossing") == crossings


CAP_ALERT = Path(__file__).resolve().parents[1] / "data" / "cap" / "restricted-security.xml"


async def test_a_cap_alert_the_agreement_allows_is_refused_at_once_not_after_a_201(
    brokers: Pair,
) -> None:
    # The receiving broker routes by the JSON document it opens and refuses a CAP alert: the
    # sending agency hears it now, with the way out, and nothing is kept or queued.
    data = CAP_ALERT.read_bytes().replace(b"2026-12-31", b"2099-12-31")
    crossings = brokers.a.scalar("SELECT count(*) FROM federation_crossing")
    async with brokers.a.sender("xk-kp") as client:
        with pytest.raises(SenderError) as refused:
            await client.post_cap(data)
    assert refused.value.status == 403
    assert refused.value.problem["reason"] == (
        "CAP alerts do not cross a border yet: post it as a JSON notice"
    )
    assert brokers.a.scalar("SELECT count(*) FROM federation_crossing") == crossings


async def test_a_peer_outage_delays_and_never_loses_or_doubles(brokers: Pair) -> None:
    a, b = brokers.a, brokers.b
    before = b.scalar("SELECT count(*) FROM notice")
    received = b.scalar("SELECT count(*) FROM federation_crossing WHERE direction = 'receive'")
    await brokers.proxy.cut()
    ids = []
    async with a.sender("xk-aki") as client:
        for _ in range(3):
            ids.append((await client.post_notice(returnee())).body["id"])
    attempts = "SELECT attempts FROM outbox WHERE kind = 'peer' AND notice_id = ?"
    await until(lambda: min(a.scalar(attempts, i) for i in ids) >= 2, 20)
    assert b.scalar("SELECT count(*) FROM notice") == before
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
    sent = "SELECT state FROM outbox WHERE kind = 'peer' AND notice_id = ?"
    await until(lambda: [a.scalar(sent, i) for i in ids] == ["sent"] * 3)
    assert (
        b.scalar("SELECT count(*) FROM federation_crossing WHERE direction = 'receive'")
        == received + 3
    )
    # The forwarder's retry after a lost answer: the same notice again is the same answer.
    status, body = await forward_again(a, b, ids[0], a.broker_key())
    assert status == 200 and body["peer_notice_id"] == ids[0]
    assert b.scalar("SELECT count(*) FROM notice") == before + 3


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


# -- what flows back: per-role status and acknowledgements -----------------------------------


def foreign(side: Side, notice_id: str) -> dict[str, Any] | None:
    stored = side.scalar(
        "SELECT foreign_status FROM federation_crossing WHERE notice_id = ?", notice_id
    )
    return None if stored is None else dict(json.loads(stored))


def actions(side: Side, notice_id: str) -> list[str]:
    return [
        r[0]
        for r in side.db().execute(
            "SELECT action FROM audit_event WHERE object = ? ORDER BY seq", (f"notice:{notice_id}",)
        )
    ]


async def test_the_foreign_roles_state_and_acknowledgement_reach_the_sender(
    brokers: Pair,
) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        notice_id = (await client.post_notice(returnee())).body["id"]
    await until(lambda: foreign(a, notice_id) is not None)
    contacts = [
        r[0]
        for r in b.db().execute("SELECT contact_id FROM delivery WHERE notice_id = ?", (notice_id,))
    ]
    role = b.scalar("SELECT role_id FROM delivery WHERE contact_id = ?", contacts[0])
    async with a.sender("xk-aki") as client:
        status = (await client.status(notice_id)).body
    assert status["abroad"]["peer"] == "mk" and status["abroad"]["forward"] == "sent"
    abroad = {r["role"]: r for r in status["roles"] if r.get("foreign")}
    assert role in abroad and abroad[role]["peer_title"] == "Broker of North Macedonia"
    assert abroad[role]["state"] in ("pending", "delivered")
    # Kumanovo's focal point acknowledges on B; A hears of it through the next report.
    async with b.recipient(contacts[0], {"xk": a.card()["directory_root"]}) as reader:
        await reader.ack(notice_id)
    await until(
        lambda: any(
            r["role"] == role and r["state"] == "acknowledged"
            for r in (foreign(a, notice_id) or {}).get("roles", [])
        )
    )
    async with a.sender("xk-aki") as client:
        status = (await client.status(notice_id)).body
    acked = next(r for r in status["roles"] if r.get("foreign") and r["role"] == role)
    assert acked["state"] == "acknowledged" and acked["acknowledged_at"]
    # The CLI prints the foreign role, marked abroad, with its peer.
    # (in a thread: A is reached through a proxy that runs on this event loop)
    shown = await asyncio.to_thread(
        run_cli,
        "--lang",
        "en",
        "status",
        notice_id,
        "--data",
        a.data,
        "--url",
        a.url,
        "--as",
        "xk-aki",
    )
    assert shown.returncode == 0, shown.stderr
    assert f"[{role}] (abroad, mk): acknowledged" in shown.stdout
    assert "forwarded to Broker of North Macedonia: sent" in shown.stdout
    # Each side audits its half with the other's ids.
    sent_side = actions(a, notice_id)
    assert (
        "notice.routed_abroad" in sent_side and sent_side.count("notice.acknowledged_abroad") == 1
    )
    event = json.loads(
        a.scalar(
            "SELECT body FROM audit_event WHERE object = ? "
            "AND action = 'notice.acknowledged_abroad'",
            f"notice:{notice_id}",
        )
    )["details"]
    assert event["peer"] == "mk" and event["peer_notice_id"] == notice_id and event["role"] == role
    assert "delivery.acknowledged" in actions(b, notice_id)
    assert actions(b, notice_id).count("notice.status_reported") >= 2
    # What crossed holds roles and states, never who holds them.
    stored = json.dumps(foreign(a, notice_id))
    assert not any(contact in stored for contact in contacts)


async def post_report(
    a: Side, report: dict[str, Any], key: KeyPair, *, key_id: str | None = None
) -> tuple[int, dict[str, Any], Any]:
    """POST a status report to A as a peer's reporter does, signed with ``key``."""
    body = json.dumps(report).encode()
    url = a.url + STATUS_PATH
    headers = signed_headers(url, body, f"{report['notice_id']}:x", key, datetime.now(UTC))
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            answer = (response.status, await response.json(content_type=None))
        async with session.post(url, data=body, headers=headers) as again:
            return *answer, again.status


def report_on(notice_id: str, **extra: Any) -> dict[str, Any]:
    role = {
        "role": "mk-kumanovo.pcve-focal-point",
        "jurisdiction": "mk-kumanovo",
        "state": "acknowledged",
        "recipients": 1,
        "delivered_at": None,
        "read_at": None,
        "acknowledged_at": "2026-12-01T10:00:00Z",
        "escalated_at": None,
        **extra,
    }
    return {
        "notice_id": notice_id,
        "reporter_notice_id": notice_id,
        "as_of": datetime.now(UTC).isoformat(),
        "status": "active",
        "roles": [role],
    }


async def test_only_the_peer_a_notice_went_to_may_report_on_it(brokers: Pair) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        notice_id = (await client.post_notice(returnee())).body["id"]
    await until(lambda: delivered(b, notice_id))
    assert brokers.intruder is not None
    # A key no peer file pins: one 401.
    status, problem, _ = await post_report(a, report_on(notice_id), generate("ed25519"))
    assert status == 401 and problem["code"] == "authentication_failed"
    # A declared peer (ba), on a notice forwarded to mk; B, on a notice never forwarded: the
    # same 403 for both, each audited with why.
    status, wrong_peer, _ = await post_report(a, report_on(notice_id), brokers.intruder)
    assert status == 403
    status, unknown, _ = await post_report(a, report_on("0" * 32), b.broker_key())
    assert status == 403 and unknown["detail"] == wrong_peer["detail"]
    refused = [
        json.loads(r[0])["details"]["why"]
        for r in a.db().execute(
            "SELECT body FROM audit_event WHERE action = 'federation.report_refused' "
            "ORDER BY seq DESC LIMIT 4"
        )
    ]
    assert (
        refused == ["no such notice here"] * 2 + ["forwarded to mk, not ba"] * 2
    )  # each sent twice
    # B itself may not slip a person into a report, and may not replay one.
    status, _, _ = await post_report(
        a, report_on(notice_id, contact="mk-kumanovo.pcve-focal-point.1"), b.broker_key()
    )
    assert status == 400
    status, _, replayed = await post_report(a, report_on(notice_id), b.broker_key())
    assert status == 200 and replayed == 401
    acks = "SELECT count(*) FROM audit_event WHERE object = ? AND action = ?"
    assert a.scalar(acks, f"notice:{notice_id}", "notice.acknowledged_abroad") <= 1


# -- updates and cancels cross under the same agreement ----------------------------------------


def contacts_on(side: Side, notice_id: str) -> set[str]:
    return {
        r[0]
        for r in side.db().execute(
            "SELECT contact_id FROM delivery WHERE notice_id = ?", (notice_id,)
        )
    }


async def test_an_update_crosses_to_the_successor_never_the_former_holder_and_a_cancel_follows(
    brokers: Pair,
) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        first = (await client.post_notice(returnee())).body["id"]
    await until(lambda: delivered(b, first))
    assert "mk-kumanovo-swc" in contacts_on(b, first)
    # B's operator hands Kumanovo's social-welfare centre to a successor, on B's store alone.
    handover = b.data / "handover.yaml"
    handover.write_text(
        hand_over_swc(b, datetime.now(UTC) + timedelta(seconds=1))
    )  # a Side has .data
    applied = await asyncio.to_thread(
        run_cli, "directory", "apply", handover, "--data", b.data, "--force"
    )
    assert applied.returncode == 0, applied.stderr
    await asyncio.sleep(6)  # B reads its directory every 5 s
    update = {**returnee(), "supersedes": first, "subject": "Arrival moved"}
    async with a.sender("xk-aki") as client:
        second = (await client.post_notice(update)).body["id"]
    await until(lambda: delivered(b, second))
    reached = contacts_on(b, second)
    assert SUCCESSOR in reached and "mk-kumanovo-swc" not in reached
    assert b.scalar("SELECT kind || ' ' || supersedes_id FROM notice WHERE id = ?", second) == (
        f"update {first}"
    )
    cancel = {**returnee(), "supersedes": second, "cancel": True, "body": {}, "subject": "Off"}
    async with a.sender("xk-aki") as client:
        third = (await client.post_notice(cancel)).body["id"]
    await until(lambda: delivered(b, third))
    assert b.scalar("SELECT status FROM notice WHERE id = ?", second) == "cancelled"
    assert a.scalar("SELECT status FROM notice WHERE id = ?", second) == "cancelled"
    assert "mk-kumanovo-swc" not in contacts_on(b, third)
    # An update of a notice that never crossed to this peer is refused at intake, here.
    async with a.sender("xk-aki") as client:
        with pytest.raises(SenderError) as refused:
            await client.post_notice({**returnee(), "supersedes": "0" * 32})
    assert refused.value.status == 422, refused.value.problem


# -- replies and escalations flow back -------------------------------------------------------


REPLY = "The family reached Kumanovo; the school place is arranged."


def reply_rows(side: Side, notice_id: str) -> int:
    return int(side.scalar("SELECT count(*) FROM reply WHERE notice_id = ?", notice_id))


def on_disk(side: Side, needle: bytes) -> list[str]:
    """Files of a broker's data directory (its store and write-ahead log) holding ``needle``."""
    return [str(f) for f in side.data.rglob("*") if f.is_file() and needle in f.read_bytes()]


async def ack_sealed_to(reader: RecipientClient, notice_id: str, key: tuple[str, bytes]) -> Any:
    """An acknowledgement whose reply is sealed to ``key``, as a client that trusted the
    receiving broker's word for the agency's key would send it."""
    verified = await reader.read(notice_id)
    statement = ack_statement(notice_id, reader.contact, verified.content_digest)
    sealed = seal(b"for the wrong reader", f"liaison-reply-v1\n{notice_id}".encode())
    body = {
        "key_id": reader.signing.key_id(reader.contact),
        "signature": base64.b64encode(reader._signer.sign(statement)).decode(),
        "reply": {
            "key_id": key[0],
            "wrap": base64.b64encode(wrap(sealed.data_key, key[1])).decode(),
            "nonce": base64.b64encode(sealed.nonce).decode(),
            "ciphertext": base64.b64encode(sealed.ciphertext).decode(),
        },
    }
    return await reader._request("POST", f"/v1/notices/{notice_id}/ack", json_body=body)


async def test_a_reply_in_kumanovo_reaches_the_kosovo_agency_sealed_for_it_alone(
    brokers: Pair,
) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        notice_id = (await client.post_notice(returnee())).body["id"]
    await until(lambda: delivered(b, notice_id))
    contacts = sorted(contacts_on(b, notice_id))
    pin = {"xk": a.card()["directory_root"]}
    agency = read_private_key(a.data / "keys" / "xk-aki.x25519.pem", expected="x25519")
    # B's own directory has an xk-aki too (each demo directory does), with a key B's side holds:
    # a reply sealed to it is refused by the client, and by B if a client sends it anyway.
    local = read_private_key(b.data / "keys" / "xk-aki.x25519.pem", expected="x25519")
    local_key = (local.key_id("xk-aki"), local.public_raw)
    async with b.recipient(contacts[0], pin) as reader:
        with pytest.raises(VerificationFailed, match="not the sending agency's"):
            await reader.ack(notice_id, reply="x", agency_key=local_key)
        with pytest.raises(RecipientError) as refused:
            await ack_sealed_to(reader, notice_id, local_key)
        assert refused.value.status == 422
        fetched = await reader._request("GET", f"/v1/notices/{notice_id}")
        assert fetched["reply_key"]["key_id"] == agency.key_id("xk-aki")
        await reader.ack(notice_id, reply=REPLY)
    await until(lambda: reply_rows(a, notice_id) == 1)
    # B's reporter sending again (a lost answer, a later change): the reply is not stored twice.
    with b.db() as conn:
        conn.row_factory = sqlite3.Row
        stored = [
            dict(r) for r in conn.execute("SELECT * FROM reply WHERE notice_id = ?", (notice_id,))
        ]
    stored[0]["created_at"] = datetime.fromisoformat(stored[0]["created_at"]).replace(tzinfo=UTC)
    again = {**report_on(notice_id), "replies": crossing_replies(stored)}
    status, _, _ = await post_report(a, again, b.broker_key())
    assert status == 200
    assert reply_rows(a, notice_id) == 1 and reply_rows(b, notice_id) == 1
    # The agency opens it where it opens a local reply: the API ...
    async with a.sender("xk-aki") as client:
        seen = (await client.status(notice_id)).body
    [reply] = seen["replies"]
    role = b.scalar(
        "SELECT role_id FROM delivery WHERE contact_id = ? AND notice_id = ?",
        contacts[0],
        notice_id,
    )
    assert reply["role"] == role
    assert decrypt_reply(reply, notice_id, agency.private_raw) == REPLY
    # ... and the CLI.
    shown = await asyncio.to_thread(
        run_cli,
        "--lang",
        "en",
        "status",
        notice_id,
        "--data",
        a.data,
        "--url",
        a.url,
        "--as",
        "xk-aki",
    )
    assert shown.returncode == 0, shown.stderr
    assert f"reply from {role}" in shown.stdout and repr(REPLY) in shown.stdout
    # The plaintext is on neither broker's disk.
    assert on_disk(a, REPLY.encode()) == [] and on_disk(b, REPLY.encode()) == []
    # Each side audits its half with the other's ids; no person crossed.
    [sent] = [
        json.loads(r[0])["details"]
        for r in b.db().execute(
            "SELECT body FROM audit_event WHERE object = ? AND action = 'reply.received'",
            (f"notice:{notice_id}",),
        )
    ]
    assert sent["peer"] == "xk" and sent["peer_notice_id"] == notice_id
    [came] = [
        json.loads(r[0])["details"]
        for r in a.db().execute(
            "SELECT body FROM audit_event WHERE object = ? AND action = 'reply.received_from_peer'",
            (f"notice:{notice_id}",),
        )
    ]
    assert came["peer"] == "mk" and came["peer_notice_id"] == notice_id and came["role"] == role
    assert a.scalar("SELECT contact_id FROM reply WHERE notice_id = ?", notice_id) == "peer:mk"


def roles_on(side: Side, notice_id: str) -> set[str]:
    return {
        r[0]
        for r in side.db().execute("SELECT role_id FROM delivery WHERE notice_id = ?", (notice_id,))
    }


def sealed_reply(key_id: str) -> dict[str, Any]:
    return {
        "id": "1",
        "role": "mk-kumanovo.pcve-focal-point",
        "created_at": datetime.now(UTC).isoformat(),
        "key_id": key_id,
        "wrap": base64.b64encode(b"w" * 80).decode(),
        "nonce": base64.b64encode(b"n" * 24).decode(),
        "ciphertext": base64.b64encode(b"c" * 40).decode(),
    }


async def test_only_the_peer_a_notice_went_to_may_bring_a_reply_to_the_agencys_key(
    brokers: Pair,
) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        notice_id = (await client.post_notice(returnee())).body["id"]
    await until(lambda: delivered(b, notice_id))
    agency = read_private_key(a.data / "keys" / "xk-aki.x25519.pem", expected="x25519")
    with_reply = {**report_on(notice_id), "replies": [sealed_reply(agency.key_id("xk-aki"))]}
    assert brokers.intruder is not None
    status, problem, _ = await post_report(a, with_reply, generate("ed25519"))
    assert status == 401 and problem["code"] == "authentication_failed"
    status, _, _ = await post_report(a, with_reply, brokers.intruder)
    assert status == 403
    why = json.loads(
        a.scalar(
            "SELECT body FROM audit_event WHERE action = 'federation.report_refused' "
            "ORDER BY seq DESC LIMIT 1"
        )
    )["details"]["why"]
    assert why == "forwarded to mk, not ba"
    # B itself may bring a reply only sealed to the agency's key, and only without a person.
    other = {**with_reply, "replies": [sealed_reply("xk-kp.x25519")]}
    status, _, _ = await post_report(a, other, b.broker_key())
    assert status == 400
    person = {**with_reply, "replies": [{**sealed_reply(agency.key_id("xk-aki")), "contact": "x"}]}
    status, _, _ = await post_report(a, person, b.broker_key())
    assert status == 400
    assert reply_rows(a, notice_id) == 0
    status, _, replayed = await post_report(a, with_reply, b.broker_key())
    assert status == 200 and replayed == 401 and reply_rows(a, notice_id) == 1


async def test_an_escalation_in_kumanovo_shows_the_kosovo_agency_escalated_abroad(
    brokers: Pair,
) -> None:
    a, b = brokers.a, brokers.b
    async with a.sender("xk-aki") as client:
        notice_id = (await client.post_notice(returnee())).body["id"]
    await until(lambda: delivered(b, notice_id))
    first = roles_on(b, notice_id)
    # Nobody in Kumanovo acknowledges within the channel's 24 hours: B's own store is aged.
    aged = (datetime.now(UTC) - timedelta(hours=25)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with b.db() as conn:
        conn.execute("UPDATE delivery SET created_at = ? WHERE notice_id = ?", (aged, notice_id))
    await until(lambda: "notice.escalated" in actions(b, notice_id))
    mayors = roles_on(b, notice_id) - first
    assert mayors and all(r.endswith(".mayor") for r in mayors)
    await until(
        lambda: (
            "notice.escalated_abroad" in actions(a, notice_id)
            and any(r["role"] in mayors for r in (foreign(a, notice_id) or {}).get("roles", []))
        )
    )
    async with a.sender("xk-aki") as client:
        status = (await client.status(notice_id)).body
    abroad = {r["role"]: r for r in status["roles"] if r.get("foreign")}
    assert {r for r in abroad if abroad[r]["state"] == "escalated"} == first
    assert all(abroad[r]["escalated_at"] for r in first)
    assert set(mayors) <= set(abroad)
    details = [
        json.loads(r[0])["details"]
        for r in a.db().execute(
            "SELECT body FROM audit_event WHERE object = ? AND action = 'notice.escalated_abroad'",
            (f"notice:{notice_id}",),
        )
    ]
    assert {d["role"] for d in details} == first
    assert all(d["peer"] == "mk" and d["peer_notice_id"] == notice_id for d in details)


def kumanovo_request(**changes: Any) -> dict[str, Any]:
    return {
        "channel": "information-request",
        "jurisdiction": "xk",
        "severity": "low",
        "subject": "Support for a returning family",
        "to": ["xk-kp"],
        "requesting_role": "mk-kumanovo.mayor",
        "body": {"topic": "returnee-support", "question": "Is a follow-up planned in Kosovo?"},
        **changes,
    }


def kosovo_answer(request_id: str) -> dict[str, Any]:
    return {
        "channel": "information-request",
        "jurisdiction": "mk-kumanovo",
        "severity": "low",
        "subject": "Re: support for a returning family",
        "in_reply_to": request_id,
        "body": {"topic": "returnee-support", "answer": "Yes: the police liaison calls Monday."},
    }


async def test_a_request_crosses_and_its_answer_comes_back_to_the_role_that_asked(
    brokers: Pair,
) -> None:
    a, b = brokers.a, brokers.b
    # The role that asks is the asking municipality's own: another's is refused before it crosses.
    async with b.sender("mk-kumanovo.municipality") as municipality:
        with pytest.raises(SenderError) as wrong_role:
            await municipality.post_notice(
                kumanovo_request(requesting_role="mk-mvr.liaison-officer")
            )
        assert wrong_role.value.status == 422
        request_id = (await municipality.post_notice(kumanovo_request())).body["id"]
    await until(lambda: roles_on(a, request_id) == {"xk-kp.liaison-officer"})
    # Only the agency asked may answer; the answer goes to the mayor who asked, and no one else.
    async with a.sender("xk-aki") as not_asked:
        with pytest.raises(SenderError) as refused:
            await not_asked.post_notice(kosovo_answer(request_id))
        assert refused.value.status == 422
    async with a.sender("xk-kp") as police:
        answer_id = (await police.post_notice(kosovo_answer(request_id))).body["id"]
    await until(lambda: roles_on(b, answer_id) == {"mk-kumanovo.mayor"})
    assert b.scalar("SELECT in_reply_to FROM notice WHERE id = ?", answer_id) == request_id

    # Kosovo's broker host edits its own store so that another agency looks addressed, and
    # forwards that agency's answer: Kumanovo's broker holds the request it sent, and refuses.
    with a.db() as conn:
        conn.execute(
            "UPDATE notice SET addressees = ? WHERE id = ?", ('["xk-kp", "xk-aki"]', request_id)
        )
    async with a.sender("xk-aki") as intruder:
        forged_id = (await intruder.post_notice(kosovo_answer(request_id))).body["id"]
    dead = "SELECT last_error FROM outbox WHERE kind = 'peer' AND notice_id = ? AND state = 'dead'"

    def dead_reason() -> str | None:
        row = a.db().execute(dead, (forged_id,)).fetchone()
        return None if row is None else str(row[0])

    await until(lambda: dead_reason() is not None)
    assert "names no request this broker sent to xk" in str(dead_reason())
    assert b.scalar("SELECT count(*) FROM notice WHERE id = ?", forged_id) == 0
