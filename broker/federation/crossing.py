"""Whether a notice may cross to (or from) a peer: a pure function of the agreements and a time.

Fail closed: a crossing is allowed only when one line of one in-force agreement names its
channel, direction, the sending organisation's kind, a jurisdiction at or above the notice's,
and the notice's marking. Checked in this order, and the first that fails is the reason given:
1. TLP:RED never crosses, whatever any agreement says;
2. a peer must serve the notice's country (a national peer for it, else the hub relaying to it;
   of those, the first whose agreement sends the channel);
3. the agreement with that peer must be in force at ``now``;
4. it must have a line for the channel in that direction;
5. the sending organisation's kind, 6. the jurisdiction and 7. the marking must be on that line
   (TLP:AMBER+STRICT only under a bilateral agreement, checked again here, not only at load).
A relay (``decide_relay``, the hub) is two crossings decided by the same rules: received from
the peer it came from, under that agreement (which must say ``relay``), then sent to the peer
that serves the notice's country — never back to the peer it came from.
No I/O; time is passed in. The sending intake (``forward.py``), the receiver (``receive.py``)
and ``policy explain`` all ask it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from broker.federation.agreements import Crossing, Direction, Peer, PeerKind
from broker.policy.channel import Marking


@dataclass(frozen=True, slots=True)
class CrossingRequest:
    """What is asked: may this notice cross, this way, now?

    ``lineage`` is the notice's jurisdiction followed by the jurisdictions above it, as far as
    this broker knows them (only the jurisdiction itself when it lies outside its directory);
    ``country`` is the country it lies in, when known.
    """

    direction: Direction
    channel: str
    marking: Marking
    organisation_kind: str | None  # the sending organisation's kind (None: not known)
    lineage: tuple[str, ...]
    country: str | None = None
    peer: str | None = None  # receiving: the peer it came from; sending: chosen by country


@dataclass(frozen=True, slots=True)
class CrossingDecision:
    allowed: bool
    reason: str  # one line a person can act on
    code: str  # stable: allowed, red_never_crosses, no_peer, agreement_not_in_force, ...
    peer: str | None = None
    agreement: str | None = None
    crossing: int | None = None  # the agreement line that allowed it


def peer_for(
    peers: Mapping[str, Peer], jurisdiction: str, country: str | None, channel: str | None = None
) -> Peer | None:
    """The peer a notice for ``jurisdiction`` goes to: the national peer of its country, else
    the hub that relays to it — the first of them whose agreement has a send line for
    ``channel``, so a country may keep a bilateral agreement for what must not go through the
    hub (TLP:AMBER+STRICT) and send the rest through the hub; when none has, the first of them
    (whose agreement then gives the refusal). A jurisdiction outside this broker's directory
    (country unknown) is matched by the agreements that name it."""
    ranked = sorted(peers.values(), key=lambda p: (p.kind is PeerKind.HUB, p.id))
    serving = [p for p in ranked if country is not None and country in p.countries]
    if country is None:
        serving = [
            p
            for p in ranked
            if any(jurisdiction in c.jurisdictions for c in p.agreement.crossings)
            or jurisdiction in p.countries
        ]
    agreed = [p for p in serving if channel is None or _sends(p, channel)]
    first = agreed or serving
    return first[0] if first else None


def _sends(peer: Peer, channel: str) -> bool:
    return any(
        c.channel == channel and c.direction.covers(Direction.SEND)
        for c in peer.agreement.crossings
    )


def decide_crossing(
    request: CrossingRequest, peers: Mapping[str, Peer], now: datetime
) -> CrossingDecision:
    """Allowed, with the agreement line that allows it; or refused, with the first reason."""
    if request.marking is Marking.RED:
        return _refused("red_never_crosses", "TLP:RED never crosses a border")
    jurisdiction = request.lineage[0]
    peer = (
        peers.get(request.peer)
        if request.peer is not None
        else peer_for(peers, jurisdiction, request.country, request.channel)
    )
    if peer is None:
        where = request.peer or request.country or jurisdiction
        return _refused("no_peer", f"no peer agreement covers {where}")
    agreement = peer.agreement
    if not agreement.valid_from <= now < agreement.valid_until:
        return _refused(
            "agreement_not_in_force",
            f"the agreement {agreement.id} with {peer.id} is in force from "
            f"{_when(agreement.valid_from)} until {_when(agreement.valid_until)}, not at {_when(now)}",
            peer,
        )
    lines = [
        c
        for c in agreement.crossings
        if c.channel == request.channel and c.direction.covers(request.direction)
    ]
    if not lines:
        way = "to send" if request.direction is Direction.SEND else "to receive"
        return _refused(
            "no_agreement",
            f"no agreement with {peer.id} for {request.channel} ({way})",
            peer,
        )
    return _match(request, peer, lines)


def _match(request: CrossingRequest, peer: Peer, lines: Sequence[Crossing]) -> CrossingDecision:
    agreement = peer.agreement
    line = lines[0]  # one line per channel and direction (refused at load otherwise)
    where = f"agreement {agreement.id} with {peer.id}, crossing {line.index}"
    if request.organisation_kind is None:
        return _refused(
            "sender_unknown", f"the sending organisation is not known ({where} names kinds)", peer
        )
    if request.organisation_kind not in line.organisation_kinds:
        return _refused(
            "organisation_kind_not_agreed",
            f"{where} lets only {', '.join(line.organisation_kinds)} send {request.channel}, "
            f"not {request.organisation_kind}",
            peer,
        )
    if not set(request.lineage) & set(line.jurisdictions):
        return _refused(
            "jurisdiction_not_agreed",
            f"{where} covers {', '.join(line.jurisdictions)}, not {request.lineage[0]}",
            peer,
        )
    if request.marking not in line.markings:
        return _refused(
            "marking_not_agreed",
            f"{where} does not let TLP:{request.marking} cross",
            peer,
        )
    if request.marking is Marking.AMBER_STRICT and not (
        agreement.bilateral and peer.kind is PeerKind.NATIONAL
    ):
        return _refused(
            "amber_strict_needs_bilateral",
            f"TLP:AMBER+STRICT crosses only under a bilateral agreement; {agreement.id} is not one",
            peer,
        )
    return CrossingDecision(
        True,
        f"{where} lets {request.organisation_kind} send {request.channel} "
        f"(TLP:{request.marking}) to {request.lineage[0]}",
        "allowed",
        peer.id,
        agreement.id,
        line.index,
    )


def _refused(code: str, reason: str, peer: Peer | None = None) -> CrossingDecision:
    return CrossingDecision(
        False,
        reason,
        code,
        peer.id if peer else None,
        peer.agreement.id if peer else None,
    )


def _when(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RelayDecision:
    """Both halves of a relay: received from one peer, sent on to another."""

    received: CrossingDecision
    onward: CrossingDecision

    @property
    def allowed(self) -> bool:
        return self.received.allowed and self.onward.allowed

    @property
    def refusal(self) -> CrossingDecision:
        return self.received if not self.received.allowed else self.onward


def relays(request: CrossingRequest, peers: Mapping[str, Peer]) -> bool:
    """Whether a notice received from ``request.peer`` is one to relay: its agreement says
    ``relay`` (a national broker's agreements never do, so it routes what it receives)."""
    peer = peers.get(request.peer) if request.peer is not None else None
    return peer is not None and peer.agreement.relay


def decide_relay(
    request: CrossingRequest, peers: Mapping[str, Peer], now: datetime
) -> RelayDecision:
    """A notice received from ``request.peer`` and relayed: the receiving half under that
    peer's agreement, then the sending half to the peer of the notice's country, whose
    agreement must allow it as any crossing. The first refusal is the reason given."""
    received = decide_crossing(replace(request, direction=Direction.RECEIVE), peers, now)
    if not received.allowed:
        return RelayDecision(received, received)
    sending = replace(request, direction=Direction.SEND, peer=None)
    others = {k: p for k, p in peers.items() if k != request.peer}
    onward = decide_crossing(sending, others, now)
    if onward.code == "no_peer":
        where = request.country or request.lineage[0]
        onward = _refused(
            "no_peer", f"no peer agreement covers {where}, other than {request.peer}'s"
        )
    return RelayDecision(received, onward)
