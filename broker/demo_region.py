"""The region of ``liaison demo --federation``, declared: which brokers, and who peers with whom.

Each broker is a ``liaison init --demo`` data directory of its own (its own broker, escrow, log,
agency and administrator keys); each peering becomes two peer files, one on each side, written
from the keys and roots the other side generated, with the agreement both sides must allow. The
story (broker/demo_federation.py) reads the region from here, so a regional hub is one more
``BrokerSpec`` and two peerings through it (xk → hub → mk) instead of one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from broker.config import load_settings
from broker.crypto import purpose_keys
from broker.federation.origin import root_pin
from broker.service.custody import load_escrow_key

CHANNEL = "returnee-repatriation"
SENDERS = ("security-service", "ministry-interior")


@dataclass(frozen=True)
class BrokerSpec:
    id: str  # the peer id the others know it by: its country, or "hub"
    title: str
    auditor: str  # the ombudsperson's contact on this broker
    kind: str = "national"


@dataclass(frozen=True)
class Peering:
    """``sender`` may forward ``CHANNEL`` to ``receiver`` for ``to`` (foreign ids, one by one);
    ``receiver`` accepts it for ``within`` (its own jurisdictions, at or below)."""

    sender: str
    receiver: str
    agreement: str
    to: tuple[str, ...]
    within: tuple[str, ...]
    bilateral: bool = True  # AMBER+STRICT crosses only under a bilateral national agreement


REGION = (
    BrokerSpec("xk", "Broker of Kosovo", "xk-ombudsman-auditor"),
    BrokerSpec("mk", "Broker of North Macedonia", "mk-ombudsman-auditor"),
)
PEERINGS = (Peering("xk", "mk", "xk-mk-2026-returnees", ("mk-kumanovo", "mk-lipkovo"), ("mk",)),)


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

    def card(self) -> dict[str, str]:
        """What the other side pins of this broker in its peer file (exchanged in person)."""
        settings = load_settings(self.data, {})
        origin, log_key = self.log()
        return {
            "url": self.url,
            "broker_key": _b64(purpose_keys.broker_key(settings, {}).public_raw),
            "escrow_key": _b64(load_escrow_key(settings, {}).public_raw),
            "directory_root": self.root_pin(),
            "log_origin": origin,
            "log_key": _b64(log_key),
        }


def peer_file(peer: Member, peering: Peering, direction: str) -> str:
    """The peer file one side keeps of ``peer`` (``direction``: this side's, send or receive)."""
    places = peering.to if direction == "send" else peering.within
    document: dict[str, Any] = {
        "id": peer.spec.id,
        "kind": peer.spec.kind,
        "title": peer.spec.title,
        **({"country": peer.spec.id} if peer.spec.kind == "national" else {}),
        **peer.card(),
        "agreement": {
            "id": peering.agreement,
            "bilateral": peering.bilateral,
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_until": "2030-01-01T00:00:00Z",
            "crossings": [
                {
                    "channel": CHANNEL,
                    "direction": direction,
                    "organisation_kinds": list(SENDERS),
                    "jurisdictions": list(places),
                    "markings": ["AMBER+STRICT"],
                }
            ],
        },
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def write_peer_files(members: dict[str, Member], peerings: tuple[Peering, ...]) -> list[Path]:
    """Both sides' peer files for each peering; a broker peering twice with one other (both
    directions) keeps one file per peer, its lines merged."""
    written: dict[Path, dict[str, Any]] = {}
    for peering in peerings:
        sender, receiver = members[peering.sender], members[peering.receiver]
        for side, other, direction in ((sender, receiver, "send"), (receiver, sender, "receive")):
            path = side.data / "policies" / "peers" / f"{other.spec.id}.yaml"
            document = yaml.safe_load(peer_file(other, peering, direction))
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
