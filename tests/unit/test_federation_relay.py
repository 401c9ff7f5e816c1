"""The hub's relay (issue 20, item 5): peer-file terms, both halves of the decision, the pins by
country, and what a relay writes — the data key re-wrapped, the escrow wrap kept only when the
agreement says so."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from broker.crypto.envelope import seal, unwrap
from broker.crypto.keys import generate
from broker.domain.notice import NoticeFacts
from broker.domain.writes import NewNotice, NonceUse
from broker.federation.agreements import Agreement, Crossing, Direction, Peer, PeerKind
from broker.federation.crossing import CrossingRequest, decide_relay, relays
from broker.federation.explain import crossing_text, explain_crossing
from broker.federation.relay import Relay, relay_rows
from broker.policy.channel import Marking
from broker.policy.load import load_policies
from tests.unit.test_federation_agreements import NOW, ROOT, example, policy_set, problems

ROOT_XK = "sha256:" + "a" * 64


def agreement(*lines: Crossing, relay: bool = False, keep_escrow: bool = False) -> Agreement:
    return Agreement(
        "region-2026",
        NOW - timedelta(days=30),
        NOW + timedelta(days=300),
        lines,
        relay=relay,
        keep_escrow=keep_escrow,
    )


def line(direction: Direction, *places: str, channel: str = "hate-incident") -> Crossing:
    return Crossing(channel, direction, ("police",), places, (Marking.AMBER,), 1)


def national(country: str, terms: Agreement, escrow: bytes | None = None) -> Peer:
    return Peer(
        country,
        PeerKind.NATIONAL,
        f"Broker of {country}",
        bytes([len(country)]) * 32,
        "sha256:" + "b" * 64,
        (country,),
        terms,
        url=f"https://{country}.example",
        escrow_key=escrow or generate("x25519").public_raw,
    )


def hub_peers(*, keep_escrow: bool = False, escrow: bytes | None = None) -> dict[str, Peer]:
    """The hub's view: Kosovo relays through it, North Macedonia receives from it."""
    return {
        "xk": national(
            "xk",
            agreement(line(Direction.RECEIVE, "mk"), relay=True, keep_escrow=keep_escrow),
        ),
        "mk": national("mk", agreement(line(Direction.SEND, "mk-kumanovo")), escrow),
    }


def received(**overrides: object) -> CrossingRequest:
    fields: dict[str, object] = {
        "direction": Direction.RECEIVE,
        "channel": "hate-incident",
        "marking": Marking.AMBER,
        "organisation_kind": "police",
        "lineage": ("mk-kumanovo", "mk"),
        "country": "mk",
        "peer": "xk",
    }
    fields.update(overrides)
    return CrossingRequest(**fields)  # type: ignore[arg-type]


# -- the decision -------------------------------------------------------------------------------


def test_a_relay_is_allowed_by_both_agreements_and_names_both_lines() -> None:
    peers = hub_peers()
    assert relays(received(), peers)
    decision = decide_relay(received(), peers, NOW)
    assert decision.allowed
    assert (decision.received.peer, decision.onward.peer) == ("xk", "mk")
    assert decision.onward.agreement == "region-2026" and decision.onward.crossing == 1


def test_only_an_agreement_that_says_relay_relays() -> None:
    peers = hub_peers()
    peers["xk"] = replace(peers["xk"], agreement=replace(peers["xk"].agreement, relay=False))
    assert not relays(received(), peers)
    assert not relays(received(peer="mk"), peers)


def test_either_half_refuses_with_the_reason_policy_explain_gives() -> None:
    peers = hub_peers()
    onward = decide_relay(received(channel="threat-assessment"), peers, NOW)
    assert not onward.allowed
    assert onward.refusal.reason == "no agreement with xk for threat-assessment (to receive)"
    peers["xk"] = replace(
        peers["xk"],
        agreement=agreement(
            line(Direction.RECEIVE, "mk"),
            replace(line(Direction.RECEIVE, "mk", channel="threat-assessment"), index=2),
            relay=True,
        ),
    )
    onward = decide_relay(received(channel="threat-assessment"), peers, NOW)
    assert onward.received.allowed and not onward.allowed
    assert onward.refusal.reason == "no agreement with mk for threat-assessment (to send)"
    red = decide_relay(received(marking=Marking.RED), peers, NOW)
    assert red.refusal.code == "red_never_crosses"


def test_a_relay_never_goes_back_to_the_peer_it_came_from() -> None:
    peers = hub_peers()
    peers["xk"] = replace(
        peers["xk"],
        agreement=agreement(line(Direction.BOTH, "mk", "xk", "xk-prishtine"), relay=True),
    )
    back = decide_relay(
        received(lineage=("xk-prishtine", "xk"), country="xk"), {"xk": peers["xk"]}, NOW
    )
    assert not back.allowed and back.refusal.code == "no_peer"
    assert "other than xk's" in back.refusal.reason


# -- the pins -------------------------------------------------------------------------------


def test_a_hub_pins_its_members_roots_and_vouches_for_no_agency_itself() -> None:
    hub = replace(
        national("hub", agreement()),
        kind=PeerKind.HUB,
        countries=("xk", "rs"),
        member_roots={"xk": ROOT_XK},
    )
    assert hub.origin_pin("xk") == ROOT_XK
    assert hub.origin_pin("rs") is None  # a member whose root the agreement does not pin
    assert hub.origin_pin(None) is None
    xk = national("xk", agreement())
    assert xk.origin_pin(None) == xk.origin_pin("xk") == xk.directory_root
    assert xk.origin_pin("rs") is None  # a national peer relays no one else's notices


def test_member_roots_and_keep_escrow_are_checked_at_load(tmp_path: Path) -> None:
    national_file = example()
    national_file["member_roots"] = {"xk": ROOT_XK}
    assert any(
        "member_roots: only a hub has members" in p for p in problems(tmp_path, national_file)
    )
    hub = example()
    hub.update(id="hub", kind="hub", countries=["mk"], member_roots={"rs": ROOT_XK})
    del hub["country"]
    hub["agreement"]["bilateral"] = False  # type: ignore[index]
    hub["agreement"]["crossings"] = []  # type: ignore[index]
    found = problems(tmp_path, hub, "hub")
    assert any("member_roots: rs is not among the hub's countries" in p for p in found)
    keeping = example()
    keeping["agreement"]["keep_escrow"] = True  # type: ignore[index]
    assert any(
        "keep_escrow: only an agreement that relays" in p for p in problems(tmp_path, keeping)
    )


# -- what a relay writes ------------------------------------------------------------------------


def relayed_write(keep_escrow: bool) -> tuple[object, dict[str, object], bytes, bytes]:
    escrow = generate("x25519")
    peers = hub_peers(keep_escrow=keep_escrow, escrow=escrow.public_raw)
    sealed = seal(b'{"channel": "hate-incident"}', b"aad")
    own = base64.b64encode(b"the wrap for this broker's escrow").decode()
    payload = {
        "notice_id": "n-1",
        "wrap": {"sealed": own},
        "origin": {
            "root": base64.b64encode(b"root").decode(),
            "bindings": base64.b64encode(b"b").decode(),
        },
    }
    facts = NoticeFacts("hate-incident", "mk-kumanovo", "medium", "xk-kp", id="n-1")
    notice = NewNotice(
        "n-1", "xk-kp", "k", "hate-incident", "mk-kumanovo", "medium", "AMBER", "sha256:p",
        "notice", None, (), None, None, NOW, None, NOW + timedelta(days=1), 0, "aead",
        b"n", sealed.ciphertext, "d", "si", "s", {},
    )  # fmt: skip
    write, crossing = relay_rows(
        Relay(
            peers["xk"],
            peers["mk"],
            decide_relay(received(), peers, NOW),
            payload,
            facts,
            sealed.data_key,
            "escrow-key-id",
        ),
        notice,
        NonceUse("peer:xk", "nonce", NOW),
        NOW,
    )
    return write, crossing, sealed.data_key, escrow.private_raw


def test_a_relay_rewraps_for_the_next_peer_and_keeps_no_escrow_wrap_unless_agreed() -> None:
    write, crossing, data_key, mk_escrow = relayed_write(keep_escrow=False)
    wraps = {w["recipient_id"]: w for w in write.wraps}  # type: ignore[attr-defined]
    assert set(wraps) == {"peer:mk"}
    assert unwrap(wraps["peer:mk"]["wrap"], mk_escrow) == data_key
    assert write.deliveries == []  # type: ignore[attr-defined]
    assert {(r["target"], r["msg_id"]) for r in write.outbox} == {  # type: ignore[attr-defined]
        ("mk", "n-1"),
        ("xk", "status:n-1"),
    }
    assert crossing["relay_to"] == "mk" and crossing["origin_country"] == "xk"
    assert crossing["direction"] == "receive" and crossing["peer"] == "xk"
    actions = [e.action for e in write.audit]  # type: ignore[attr-defined]
    assert actions == ["notice.received_from_peer", "notice.relayed", "escrow.used"]
    kept, *_ = relayed_write(keep_escrow=True)
    assert {w["recipient_id"] for w in kept.wraps} == {  # type: ignore[attr-defined]
        "peer:mk",
        "broker-escrow",
    }


def test_the_deploy_example_of_the_hubs_side_is_a_valid_peer_file_that_relays(
    tmp_path: Path,
) -> None:
    text = (ROOT / "deploy" / "federation" / "hub-agreement.yaml").read_text()
    peer = load_policies(policy_set(tmp_path, xk=text)).peers["xk"]
    assert peer.agreement.relay and not peer.agreement.keep_escrow
    assert {c.channel for c in peer.agreement.crossings} == {"hate-incident", "information-request"}


def test_policy_explain_on_the_hub_gives_both_halves_of_a_relay() -> None:
    peers = hub_peers()
    facts = NoticeFacts("hate-incident", "mk-kumanovo", "medium", "xk-kp")
    asked = replace(received(), direction=Direction.SEND, peer=None)
    report = explain_crossing(asked, facts, peers, NOW, "xk")
    assert report["allowed"] and report["peer"] == "mk"
    assert report["relay"] == {
        "from": "xk",
        "received_under": "region-2026",
        "received_crossing": 1,
        "to": "mk",
    }
    assert "relayed: from xk (agreement region-2026) on to mk" in crossing_text(report)
    refused = explain_crossing(replace(asked, channel="threat-assessment"), facts, peers, NOW, "xk")
    assert not refused["allowed"]
    assert refused["reason"] == "no agreement with xk for threat-assessment (to receive)"
    assert "relay" not in explain_crossing(asked, facts, peers, NOW)  # a national broker's view
