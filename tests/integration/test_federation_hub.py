"""Three real brokers on loopback: Kosovo, the regional hub and North Macedonia.

Each is its own `liaison init --demo` data directory (its own broker, escrow, agency and
administrator keys). Kosovo has one agreement, with the hub; North Macedonia has one, with the
hub; the hub has one with each, and its agreement with Kosovo says ``relay``. A Kosovo police
notice for Kumanovo goes xk → hub → mk: the hub routes nothing to its own roles, re-wraps the
data key for mk's escrow and forwards the notice with Kosovo's signature and directory
unchanged; Kumanovo's focal point verifies the Kosovo signature against the Kosovo root it
pinned itself; the acknowledgement goes back mk → hub → xk. Then a relay the hub's agreement
with mk refuses (explained by `liaison policy explain` on the hub), and forged relays.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from adapters.client.errors import VerificationFailed
from adapters.client.sender import SenderError, decrypt_reply
from broker.config import load_settings
from broker.crypto.envelope import unwrap, wrap_many
from broker.crypto.httpsig import parse_signatures, signature_base
from broker.crypto.keys import KeyPair, generate, read_private_key
from broker.federation.forward import PATH, crossing_payload, signed_headers
from broker.service.custody import load_escrow_key
from broker.service.setup import init_data_dir
from tests.conftest import POLICIES
from tests.integration.test_federation_forward import (
    ENV,
    Side,
    actions,
    delivered,
    foreign,
    post_report,
    reply_rows,
    report_on,
    sealed_reply,
    until,
)
from tests.support import free_port, output, run_cli, serve_process

pytestmark = pytest.mark.asyncio(loop_scope="module")

AGREEMENT = """  valid_from: 2026-01-01T00:00:00Z
  valid_until: 2030-01-01T00:00:00Z
"""


def card_lines(side: Side) -> str:
    return "".join(f"{name}: {value}\n" for name, value in side.card().items())


def line(channel: str, direction: str, places: str) -> str:
    return (
        f"    - {{channel: {channel}, direction: {direction}, organisation_kinds: [police], "
        f"jurisdictions: [{places}], markings: [AMBER]}}\n"
    )


def hub_file(side: Side, country: str, agreement: str, lines: str, roots: str = "") -> str:
    """A national broker's peer file for the hub (kind hub: it relays to ``country``)."""
    return (
        f"id: hub\nkind: hub\ntitle: Regional hub\nurl: {side.url}\ncountries: [{country}]\n"
        f"{card_lines(side)}{roots}agreement:\n  id: {agreement}\n{AGREEMENT}  crossings:\n{lines}"
    )


def national_file(side: Side, country: str, title: str, agreement: str, lines: str) -> str:
    """The hub's peer file for a national broker."""
    return (
        f"id: {country}\nkind: national\ntitle: {title}\nurl: {side.url}\ncountry: {country}\n"
        f"{card_lines(side)}agreement:\n  id: {agreement}\n{AGREEMENT}{lines}"
    )


@dataclass
class Trio:
    xk: Side
    hub: Side
    mk: Side
    logs: tuple[Any, Any, Any]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def region(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Trio]:
    now = datetime.now(UTC)
    tmp = tmp_path_factory.mktemp("region")
    xk, hub, mk = Side(tmp / "xk"), Side(tmp / "hub"), Side(tmp / "mk")
    ports = {}
    for side in (xk, hub, mk):
        await init_data_dir(side.data, demo=True, now=now, environ={})
        ports[side.data.name] = free_port()
        side.url = f"http://127.0.0.1:{ports[side.data.name]}"
        (side.data / "policies" / "peers").mkdir()
    # Kumanovo's channel takes replies to a hate incident (they go back mk → hub → xk).
    with (mk.data / "policies" / "channels" / "hate-incident.yaml").open("a") as channel:
        channel.write("replies: true\n")
    xk_root = xk.card()["directory_root"]
    (xk.data / "policies" / "peers" / "hub.yaml").write_text(
        hub_file(
            hub,
            "mk",
            "xk-hub-2026",
            line("hate-incident", "send", "mk-kumanovo")
            + line("threat-assessment", "send", "mk-kumanovo"),
        )
    )
    (hub.data / "policies" / "peers" / "xk.yaml").write_text(
        national_file(
            xk,
            "xk",
            "Broker of Kosovo",
            "xk-hub-2026",
            "  relay: true\n  crossings:\n"
            + line("hate-incident", "receive", "mk")
            + line("threat-assessment", "receive", "mk"),
        )
    )
    (hub.data / "policies" / "peers" / "mk.yaml").write_text(
        national_file(
            mk,
            "mk",
            "Broker of North Macedonia",
            "mk-hub-2026",
            "  crossings:\n" + line("hate-incident", "send", "mk-kumanovo"),
        )
    )
    (mk.data / "policies" / "peers" / "hub.yaml").write_text(
        hub_file(
            hub,
            "xk",
            "mk-hub-2026",
            line("hate-incident", "receive", "mk"),
            roots=f"member_roots:\n  xk: {xk_root}\n",
        )
    )
    with (
        serve_process(mk.data, env=ENV, port=ports["mk"]) as (mp, _),
        serve_process(hub.data, env=ENV, port=ports["hub"]) as (hp, _),
        serve_process(xk.data, env=ENV, port=ports["xk"]) as (xp, _),
    ):
        yield Trio(xk, hub, mk, (xp, hp, mp))


def hate_incident(channel: str = "hate-incident") -> dict[str, Any]:
    document = json.loads((POLICIES / "examples" / f"{channel}.json").read_text())
    document["jurisdiction"] = "mk-kumanovo"
    return document


def details(side: Side, notice_id: str, action: str) -> dict[str, Any]:
    body = side.scalar(
        "SELECT body FROM audit_event WHERE object = ? AND action = ?",
        f"notice:{notice_id}",
        action,
    )
    return dict(json.loads(body)["details"])


async def post(region: Trio, document: dict[str, Any]) -> str:
    async with region.xk.sender("xk-kp") as client:
        answer = (await client.post_notice(document)).body
    assert answer["forwarded"]["peer"] == "hub" and answer["recipient_count"] == 0
    return str(answer["id"])


async def reached_mk(region: Trio, notice_id: str) -> None:
    try:
        await until(lambda: delivered(region.mk, notice_id))
    except AssertionError:
        raise AssertionError(
            region.hub.db().execute("SELECT target, state, last_error FROM outbox").fetchall(),
            output(region.logs[1])[-3000:],
        ) from None


async def test_a_kosovo_notice_is_relayed_by_the_hub_and_verifies_in_kumanovo(
    region: Trio,
) -> None:
    xk, hub, mk = region.xk, region.hub, region.mk
    document = hate_incident()
    notice_id = await post(region, document)
    await reached_mk(region, notice_id)
    # The hub routed nothing to its own roles, and once mk holds the notice it keeps metadata
    # only (the agreement does not say keep_escrow): no ciphertext, no wrap.
    assert hub.scalar("SELECT count(*) FROM delivery WHERE notice_id = ?", notice_id) == 0
    await until(
        lambda: hub.scalar("SELECT ciphertext IS NULL FROM notice WHERE id = ?", notice_id) == 1
    )
    assert hub.scalar("SELECT count(*) FROM notice_wrap WHERE notice_id = ?", notice_id) == 0
    assert hub.scalar("SELECT channel FROM notice WHERE id = ?", notice_id) == "hate-incident"
    dropped = details(hub, notice_id, "notice.relay_body_dropped")
    assert dropped["to_peer"] == "mk" and len(dropped["ciphertext_sha256"]) == 64
    # The agency's evidence went through unchanged: the same signature on all three brokers.
    evidence = "SELECT signature_input || signature || content_digest FROM notice WHERE id = ?"
    assert xk.scalar(evidence, notice_id) == hub.scalar(evidence, notice_id)
    assert hub.scalar(evidence, notice_id) == mk.scalar(evidence, notice_id)
    contact = mk.scalar("SELECT contact_id FROM delivery WHERE notice_id = ?", notice_id)
    assert contact.startswith("mk-kumanovo-pcve")
    # Kumanovo's focal point pinned Kosovo's root (from the agreement), never the hub's.
    xk_root = xk.card()["directory_root"]
    async with mk.recipient(contact, {"xk": xk_root}) as reader:
        verified = await reader.read(notice_id)
    assert verified.notice["body"] == document["body"]
    assert verified.sender_key_id == read_private_key(xk.data / "keys" / "xk-kp.pem").key_id(
        "xk-kp"
    )
    async with mk.recipient(contact, {"hub": hub.card()["directory_root"]}) as reader:
        with pytest.raises(VerificationFailed, match=r"from xk \(relayed by hub\)"):
            await reader.read(notice_id)
    # Each hop's half, audited with the peers' ids.
    relayed = details(hub, notice_id, "notice.relayed")
    assert relayed["from_peer"] == "xk" and relayed["to_peer"] == "mk"
    assert relayed["received_under"] == "xk-hub-2026#1"
    assert relayed["sent_under"] == "mk-hub-2026#1"
    escrow = details(hub, notice_id, "escrow.used")
    assert escrow["purpose"] == "federation.relay" and escrow["escrow_wrap_kept"] is False
    assert details(hub, notice_id, "notice.received_from_peer")["relay_to"] == "mk"
    assert "notice.forwarded" in actions(hub, notice_id)
    received = details(mk, notice_id, "notice.received_from_peer")
    assert received["peer"] == "hub" and received["agreement"] == "mk-hub-2026"
    assert details(xk, notice_id, "notice.forward_queued")["peer"] == "hub"

    # The acknowledgement and its reply go back mk → hub → xk, the reply sealed to the key
    # Kosovo's own directory binds to the agency: the hub passes it on, unable to open it.
    async with mk.recipient(contact, {"xk": xk_root}) as reader:
        await reader.ack(notice_id, reply="Two officers visit the school today.")
    role = mk.scalar("SELECT role_id FROM delivery WHERE contact_id = ?", contact)

    def acked(side: Side) -> bool:
        roles = (foreign(side, notice_id) or {}).get("roles", [])
        return any(r["role"] == role and r["state"] == "acknowledged" for r in roles)

    await until(lambda: acked(hub))
    await until(lambda: acked(xk))
    shown = await asyncio.to_thread(
        run_cli,
        "--lang",
        "en",
        "status",
        notice_id,
        "--data",
        xk.data,
        "--url",
        xk.url,
        "--as",
        "xk-kp",
    )
    assert shown.returncode == 0, shown.stderr
    assert f"[{role}] (abroad, hub): acknowledged" in shown.stdout
    async with xk.sender("xk-kp") as client:
        replies = (await client.status(notice_id)).body["replies"]
    assert [r["role"] for r in replies] == [role]
    agency = read_private_key(xk.data / "keys" / "xk-kp.x25519.pem", expected="x25519")
    assert decrypt_reply(replies[0], notice_id, agency.private_raw) == (
        "Two officers visit the school today."
    )
    sealed = "SELECT ciphertext FROM reply WHERE notice_id = ?"
    assert xk.scalar(sealed, notice_id) == mk.scalar(sealed, notice_id)  # passed on unopened
    assert b"school" not in xk.scalar(sealed, notice_id)
    # Once Kosovo accepted the report carrying it, the hub keeps no sealed bytes of it.
    await until(lambda: hub.scalar(sealed, notice_id) == b"")
    assert details(xk, notice_id, "reply.received_from_peer")["peer"] == "hub"
    assert details(hub, notice_id, "reply.received_from_peer")["peer"] == "mk"
    assert "notice.acknowledged_abroad" in actions(hub, notice_id)
    assert "notice.acknowledged_abroad" in actions(xk, notice_id)
    assert "notice.status_reported" in actions(hub, notice_id)


async def test_a_relay_the_hubs_agreement_with_mk_refuses_is_explained_there(
    region: Trio,
) -> None:
    xk, hub, mk = region.xk, region.hub, region.mk
    document = hate_incident("threat-assessment")
    notice_id = await post(region, document)  # Kosovo's agreement with the hub allows it
    reason = "no agreement with mk for threat-assessment (to send)"
    refused = "SELECT body FROM audit_event WHERE action = 'notice.receive_refused'"

    def refusals() -> list[str]:
        return [json.loads(r[0])["details"]["why"] for r in hub.db().execute(refused)]

    await until(lambda: reason in refusals())
    # A refusal is not an outage: Kosovo gives up at the first answer (no retry would change
    # it) and its agency reads why in the status, in the hub's words.
    state = "SELECT state FROM outbox WHERE kind = 'peer' AND notice_id = ?"
    await until(lambda: xk.scalar(state, notice_id) == "dead")
    assert xk.scalar("SELECT attempts FROM outbox WHERE notice_id = ?", notice_id) == 1
    assert details(xk, notice_id, "peer.refused")["error"] == f"HTTP 403: {reason}"
    async with xk.sender("xk-kp") as client:
        abroad = (await client.status(notice_id)).body["abroad"]
    assert (abroad["forward"], abroad["forward_error"]) == ("dead", f"HTTP 403: {reason}")
    assert (abroad["peer"], abroad["country"]) == ("hub", "mk")  # the country behind the hub
    shown = await asyncio.to_thread(
        run_cli,
        "--lang",
        "sq",
        "status",
        notice_id,
        "--url",
        xk.url,
        "--data",
        xk.data,
        "--as",
        "xk-kp",
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f", për mk: dead\n  përcjellja dështoi: HTTP 403: {reason}\n" in shown.stdout
    assert not delivered(hub, notice_id) and not delivered(mk, notice_id)
    # The hub's operator asks why: the same pure decision, the same words.
    path = hub.data / "threat.json"
    path.write_text(json.dumps(document))
    explained = await asyncio.to_thread(
        run_cli, "policy", "explain", "--data", hub.data, path, "--as", "xk-kp"
    )
    assert explained.returncode == 1, explained.stdout + explained.stderr
    assert reason in explained.stdout + explained.stderr
    assert "relayed: from xk (agreement xk-hub-2026) on to mk" in explained.stdout
    # Kosovo's side explains its own half: allowed, to the hub.
    explained = await asyncio.to_thread(
        run_cli, "policy", "explain", "--data", xk.data, path, "--as", "xk-kp"
    )
    assert explained.returncode == 0, explained.stdout + explained.stderr
    assert "xk-hub-2026" in explained.stdout


async def relay_again(
    region: Trio,
    notice_id: str,
    key: KeyPair,
    *,
    origin: Path | None = None,
    country: str | None = "xk",
    **change: Any,
) -> tuple[int, dict[str, Any]]:
    """Offer mk the relay again, as the hub's forwarder sends it (the hub dropped its copy: it is
    rebuilt from Kosovo's, the key re-wrapped as the hub does), signed with ``key``; ``origin``:
    another directory than Kosovo's; ``change``: fields altered after signing."""
    xk, hub, mk = region.xk, region.hub, region.mk
    with xk.db() as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM notice WHERE id = ?", (notice_id,)).fetchone())
        sealed = conn.execute(
            "SELECT wrap FROM notice_wrap WHERE notice_id = ? AND recipient_id = 'peer:hub'",
            (notice_id,),
        ).fetchone()[0]
    data_key = unwrap(sealed, load_escrow_key(load_settings(hub.data, {}), {}).private_raw)
    mk_escrow = load_escrow_key(load_settings(mk.data, {}), {}).public_raw
    wrap = {"key_id": "mk", "wrap": wrap_many(data_key, [mk_escrow])[0]}
    for name in ("created_at", "expires_at"):
        row[name] = datetime.fromisoformat(row[name]) if row[name] else None
    trust = origin or xk.data / "trust"
    root, bindings = (trust / "root.json").read_bytes(), (trust / "bindings.json").read_bytes()
    payload = crossing_payload(row, wrap, "police", root, bindings, origin_country=country)
    body = json.dumps(payload).encode()
    url = mk.url + PATH
    headers = signed_headers(url, body, notice_id, key, datetime.now(UTC))
    if change:
        body = json.dumps(payload | change).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_forged_relays_are_refused(region: Trio) -> None:
    hub, mk = region.hub, region.mk
    notice_id = await post(region, hate_incident())
    await reached_mk(region, notice_id)
    # Deleting mk's copy lets the same notice be offered again, by forgers.
    with mk.db() as conn:
        for table in ("delivery", "notice_wrap", "federation_crossing", "outbox"):
            conn.execute(f"DELETE FROM {table} WHERE notice_id = ?", (notice_id,))  # noqa: S608
        conn.execute("DELETE FROM notice WHERE id = ?", (notice_id,))
    hub_key = hub.broker_key()
    # Signed by a key no peer file pins.
    status, problem = await relay_again(region, notice_id, generate("ed25519"))
    assert status == 401 and problem["code"] == "authentication_failed"
    # Signed by the hub, then altered in flight.
    status, problem = await relay_again(region, notice_id, hub_key, jurisdiction="mk-lipkovo")
    assert status == 401, problem
    # The hub itself passes its own directory off as Kosovo's: not the root mk pins for xk.
    status, problem = await relay_again(region, notice_id, hub_key, origin=hub.data / "trust")
    assert status == 403 and "origin not verified" in problem["reason"], problem
    # ... or as a notice of its own (no country): the hub's directory vouches for no agency.
    status, problem = await relay_again(
        region, notice_id, hub_key, origin=hub.data / "trust", country=None
    )
    assert status == 403 and "pins no directory root" in problem["reason"], problem
    assert not delivered(mk, notice_id)
    refused = mk.scalar(
        "SELECT count(*) FROM audit_event WHERE action = 'notice.receive_refused' AND object = ?",
        "federation",
    )
    assert refused >= 2
    # The genuine relay, offered again by the hub, is accepted: the refusals were the forgeries.
    status, problem = await relay_again(region, notice_id, hub_key)
    assert status == 201, problem
    assert delivered(mk, notice_id)


async def test_an_update_and_a_cancel_are_relayed_where_the_notice_went(region: Trio) -> None:
    xk, hub, mk = region.xk, region.hub, region.mk
    first = await post(region, hate_incident())
    await reached_mk(region, first)
    second = await post(region, {**hate_incident(), "supersedes": first, "subject": "Repainted"})
    await reached_mk(region, second)
    kind = "SELECT kind || ' ' || supersedes_id FROM notice WHERE id = ?"
    assert mk.scalar(kind, second) == hub.scalar(kind, second) == f"update {first}"
    assert mk.scalar("SELECT count(*) FROM delivery WHERE notice_id = ?", second) >= 1
    cancel = {**hate_incident(), "supersedes": second, "cancel": True, "body": {}}
    third = await post(region, {**cancel, "subject": "Off"})
    await reached_mk(region, third)
    status = "SELECT status FROM notice WHERE id = ?"
    assert mk.scalar(status, second) == hub.scalar(status, second) == "cancelled"
    assert xk.scalar(status, second) == "cancelled"
    assert details(hub, third, "notice.relayed")["to_peer"] == "mk"


async def test_a_directory_vouches_only_for_its_own_countrys_agencies(region: Trio) -> None:
    """Kosovo's demo directory also binds keys for North Macedonian agencies (it holds the
    region), and Kosovo's host holds them: it re-signs a notice as mk-bjb, North Macedonia's
    police, and sends it to the hub under Kosovo's root. Every signature verifies; the hub
    refuses it, because mk-bjb is not an agency of the country whose directory it carries."""
    xk, hub = region.xk, region.hub
    notice_id = await post(region, hate_incident())
    await reached_mk(region, notice_id)
    with hub.db() as conn:  # the hub forgets it, so the forgery is not a replay
        for table in ("federation_crossing", "outbox", "notice_wrap"):
            conn.execute(f"DELETE FROM {table} WHERE notice_id = ?", (notice_id,))  # noqa: S608
        conn.execute("DELETE FROM notice WHERE id = ?", (notice_id,))
    with xk.db() as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM notice WHERE id = ?", (notice_id,)).fetchone())
        wrap = dict(
            conn.execute(
                "SELECT * FROM notice_wrap WHERE notice_id = ? AND recipient_id = 'peer:hub'",
                (notice_id,),
            ).fetchone()
        )
    for name in ("created_at", "expires_at"):
        row[name] = datetime.fromisoformat(row[name]) if row[name] else None
    bjb = read_private_key(xk.data / "keys" / "mk-bjb.pem", expected="ed25519")
    [parsed] = parse_signatures(
        {"signature-input": row["signature_input"], "signature": row["signature"]}
    )
    params = parsed.signature_params.replace(parsed.params["keyid"], bjb.key_id("mk-bjb"))
    values = json.loads(row["signed_values"])
    raw = bjb.private.sign(signature_base([(c, values[c]) for c in parsed.components], params))
    row |= {
        "sender_id": "mk-bjb",
        "sender_key_id": bjb.key_id("mk-bjb"),
        "signature_input": f"{parsed.label}={params}",
        "signature": f"{parsed.label}=:{base64.b64encode(raw).decode()}:",
    }
    trust = xk.data / "trust"
    payload = crossing_payload(
        row,
        wrap,
        "police",
        (trust / "root.json").read_bytes(),
        (trust / "bindings.json").read_bytes(),
    )
    body = json.dumps(payload).encode()
    url = hub.url + PATH
    headers = signed_headers(url, body, notice_id, xk.broker_key(), datetime.now(UTC))
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        status, problem = response.status, await response.json(content_type=None)
    assert status == 403, problem
    assert problem["reason"] == (
        "the sender mk-bjb is not of xk, whose directory the notice carries"
    )
    assert not delivered(hub, notice_id)


async def test_the_hub_passes_on_only_replies_sealed_to_the_agency_as_its_country_binds_it(
    region: Trio,
) -> None:
    # Kumanovo's broker host (the attacker: it holds mk's broker key) reports on a relayed
    # notice with a reply sealed to a key it chose: the hub refuses it, whoever's key it is.
    xk, hub, mk = region.xk, region.hub, region.mk
    notice_id = await post(region, hate_incident())
    await reached_mk(region, notice_id)
    kp = read_private_key(xk.data / "keys" / "xk-kp.x25519.pem", expected="x25519")
    other_agency = read_private_key(xk.data / "keys" / "xk-aki.x25519.pem", expected="x25519")
    for key_id in (other_agency.key_id("xk-aki"), "mk-mvr.x25519", kp.key_id("xk-kp") + "x"):
        forged = {**report_on(notice_id), "replies": [sealed_reply(key_id)]}
        status, _, _ = await post_report(hub, forged, mk.broker_key())
        assert status == 400, key_id
    assert reply_rows(hub, notice_id) == 0
    fair = {**report_on(notice_id), "replies": [sealed_reply(kp.key_id("xk-kp"))]}
    status, _, _ = await post_report(hub, fair, mk.broker_key())
    assert status == 200 and reply_rows(hub, notice_id) == 1
    await until(lambda: reply_rows(xk, notice_id) == 1)  # and on to Kosovo, once
    # Kosovo holds it: the hub keeps that it passed (role, time, key id), not its sealed bytes.
    emptied = "SELECT count(*) FROM reply WHERE notice_id = ? AND length(ciphertext) = 0"
    await until(lambda: hub.scalar(emptied, notice_id) == 1)
    dropped = hub.scalar(
        "SELECT body FROM audit_event WHERE action = 'reply.relay_body_dropped' AND object = ?",
        f"notice:{notice_id}",
    )
    assert json.loads(dropped)["details"]["replies"] == 1
    assert json.loads(dropped)["details"]["to_peer"] == "xk"
    kept = "SELECT count(*) FROM reply WHERE notice_id = ? AND length(ciphertext) > 0"
    assert xk.scalar(kept, notice_id) == 1 and reply_rows(xk, notice_id) == 1


async def test_an_answer_to_a_request_is_refused_at_the_hub_s_door_with_the_reason(
    region: Trio,
) -> None:
    # Answers go to the role that asked, which only the broker that sent the request can check;
    # through the hub that is not built: said at intake, before anything is kept.
    crossings = region.xk.scalar("SELECT count(*) FROM federation_crossing")
    async with region.xk.sender("xk-kp") as client:
        with pytest.raises(SenderError) as refused:
            await client.post_notice({**hate_incident(), "in_reply_to": "0" * 32})
    assert refused.value.status == 403
    assert refused.value.problem["reason"] == "answers to a request do not cross the hub yet"
    assert region.xk.scalar("SELECT count(*) FROM federation_crossing") == crossings
