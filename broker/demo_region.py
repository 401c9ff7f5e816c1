"""The region of ``liaison demo --federation``, declared: which brokers, and who peers with whom.

Each broker is a ``liaison init --demo`` data directory of its own (its own broker, escrow, log,
agency and administrator keys); each peering becomes two peer files, one on each side, written
from the keys and roots the other side generated, with the agreement both sides must allow. The
story (broker/demo_federation.py) reads the region from here.

The region: Kosovo, North Macedonia and the regional hub. Returnee notices are TLP:AMBER+STRICT,
which crosses only under a bilateral agreement between two countries — never through the hub
(broker/federation/crossing.py) — so Kosovo and North Macedonia keep one for them (the shape of
deploy/federation/peer-agreement.yaml), and each has one agreement with the hub for police
hate-incident notices (TLP:AMBER), which the hub relays. A notice goes to the first peer serving
its country whose agreement sends its channel (``crossing.peer_for``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from broker.config import load_settings
from broker.crypto import purpose_keys
from broker.federation.card import broker_card
from broker.federation.origin import root_pin

CHANNEL = "returnee-repatriation"
SENDERS = ("security-service", "ministry-interior")
RELAYED = "hate-incident"  # what the hub relays in the story (police, TLP:AMBER)


@dataclass(frozen=True)
class BrokerSpec:
    id: str  # the peer id the others know it by: its country, or "hub"
    title: str
    auditor: str  # the ombudsperson's contact on this broker
    kind: str = "national"


@dataclass(frozen=True)
class Peering:
    """``sender`` may forward ``channel`` to ``receiver`` for ``to`` (foreign ids, one by one);
    ``receiver`` accepts it for ``within`` (its own jurisdictions, at or below), and relays it
    on when ``relay`` (the hub)."""

    sender: str
    receiver: str
    agreement: str
    to: tuple[str, ...]
    within: tuple[str, ...]
    bilateral: bool = True  # AMBER+STRICT crosses only under a bilateral national agreement
    channel: str = CHANNEL
    senders: tuple[str, ...] = SENDERS
    marking: str = "AMBER+STRICT"
    relay: bool = False


HUB_TERMS: dict[str, Any] = {
    "bilateral": False,  # an agreement with the hub never is
    "channel": RELAYED,
    "senders": ("police",),
    "marking": "AMBER",
}
REGION = (
    BrokerSpec("xk", "Broker of Kosovo", "xk-ombudsman-auditor"),
    BrokerSpec("hub", "Regional hub", "mk-ombudsman-auditor", kind="hub"),
    BrokerSpec("mk", "Broker of North Macedonia", "mk-ombudsman-auditor"),
)
KUMANOVO = ("mk-kumanovo", "mk-lipkovo")
PEERINGS = (
    Peering("xk", "mk", "xk-mk-2026-returnees", KUMANOVO, ("mk",)),
    Peering("xk", "hub", "xk-hub-2026", KUMANOVO, ("mk",), relay=True, **HUB_TERMS),
    Peering("hub", "mk", "mk-hub-2026", KUMANOVO, ("mk",), **HUB_TERMS),
)


@dataclass
class Member:
    """One broker of the region as the demo runs it."""

    spec: BrokerSpec
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> tuple[str, bytes]:
        """The log's origin and the key its checkpoints are signed with."""
        settings = load_settings(self.data, {})
        keys = purpose_keys.load_for(settings, {}).log_keys()
        return settings.audit.origin or keys.origin, keys.publics[0]

    def root_pin(self) -> str:
        return root_pin((self.data / "trust" / "root.json").read_bytes())

    def card(self) -> dict[str, Any]:
        """What the other side pins of this broker in its peer file (``liaison keys card``)."""
        return broker_card(self.data, load_settings(self.data, {}), {}, url=self.url)


def peer_file(
    peer: Member, peering: Peering, direction: str, members: dict[str, Member] | None = None
) -> str:
    """The peer file one side keeps of ``peer`` (``direction``: this side's, send or receive).
    Of the hub: the countries it relays to and their roots, from ``members`` (the region's
    national brokers other than this side's)."""
    places = peering.to if direction == "send" else peering.within
    side = peering.sender if direction == "send" else peering.receiver
    document: dict[str, Any] = {
        "id": peer.spec.id,
        "kind": peer.spec.kind,
        "title": peer.spec.title,
        **_served(peer, side, members or {}),
        **peer.card(),
        "agreement": {
            "id": peering.agreement,
            "bilateral": peering.bilateral,
            **({"relay": True} if peering.relay and direction == "receive" else {}),
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_until": "2030-01-01T00:00:00Z",
            "crossings": [
                {
                    "channel": peering.channel,
                    "direction": direction,
                    "organisation_kinds": list(peering.senders),
                    "jurisdictions": list(places),
                    "markings": [peering.marking],
                }
            ],
        },
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _served(peer: Member, side: str, members: dict[str, Member]) -> dict[str, Any]:
    """A national peer's country; the hub's countries, each with the root its country pinned."""
    if peer.spec.kind == "national":
        return {"country": peer.spec.id}
    others = [m for m in members.values() if m.spec.kind == "national" and m.spec.id != side]
    return {
        "countries": [m.spec.id for m in others],
        "member_roots": {m.spec.id: m.root_pin() for m in others},
    }


def write_peer_files(members: dict[str, Member], peerings: tuple[Peering, ...]) -> list[Path]:
    """Both sides' peer files for each peering; a broker peering twice with one other (both
    directions) keeps one file per peer, its lines merged."""
    written: dict[Path, dict[str, Any]] = {}
    for peering in peerings:
        sender, receiver = members[peering.sender], members[peering.receiver]
        for side, other, direction in ((sender, receiver, "send"), (receiver, sender, "receive")):
            path = side.data / "policies" / "peers" / f"{other.spec.id}.yaml"
            document = yaml.safe_load(peer_file(other, peering, direction, members))
            if path in written:
                written[path]["agreement"]["crossings"] += document["agreement"]["crossings"]
            else:
                written[path] = document
    for path, document in written.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return list(written)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
