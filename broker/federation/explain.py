"""``liaison policy explain`` for a notice that would leave the country: may it cross, and why.

A notice is a crossing when its jurisdiction lies outside this broker's directory, or in
another country than the sending organisation's. The answer comes from the peer agreements of
the policy set (``broker/federation/crossing.py``), the same the intake asks (``forward.py``).
On the hub, a notice of an agency whose country's agreement says ``relay`` is explained as the
relay it would be (``decide_relay``, the same the receiver asks): both halves, the first refusal.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from broker.domain.directory import Directory
from broker.domain.notice import NoticeFacts
from broker.errors import UnknownChannel
from broker.federation.agreements import Direction, Peer
from broker.federation.crossing import CrossingRequest, decide_crossing, decide_relay
from broker.policy.channel import Channel

FORWARDING = (
    "an allowed crossing is forwarded to the peer when posted; a refused one is refused with "
    "this reason"
)
RELAYING = (
    "a relay is decided when the notice arrives from the peer: allowed, it is forwarded to the "
    "next peer, never routed here; refused, the peer is answered 403 with this reason"
)


def relaying_peer(notice: NoticeFacts, directory: Directory, peers: dict[str, Peer]) -> str | None:
    """On the hub: the peer a notice of this sender would come from, when its agreement relays
    (the national peer of the sender's country); None anywhere else."""
    organisation = directory.organisations.get(notice.sender)
    home = directory.country_of(organisation.jurisdiction) if organisation else None
    for peer in sorted(peers.values(), key=lambda p: p.id):
        if peer.agreement.relay and home in peer.countries:
            return peer.id
    return None


def outbound_crossing(
    notice: NoticeFacts, directory: Directory, channels: dict[str, Channel], *, sender_known: bool
) -> CrossingRequest | None:
    """The crossing ``notice`` would be if sent from here, or None when it stays in the country."""
    jurisdiction = notice.jurisdiction
    known = jurisdiction in directory.jurisdictions
    organisation = directory.organisations.get(notice.sender) if sender_known else None
    home = directory.country_of(organisation.jurisdiction) if organisation else None
    country = directory.country_of(jurisdiction) if known else None
    if known and (home is None or home == country):
        return None
    channel = channels.get(notice.channel)
    if channel is None:
        raise UnknownChannel("unknown channel", detail=notice.channel)
    lineage = (
        (jurisdiction, *(j.id for j in directory.ancestors(jurisdiction)))
        if known
        else (jurisdiction,)
    )
    return CrossingRequest(
        Direction.SEND,
        channel.id,
        channel.marking,
        organisation.kind if organisation else None,
        lineage,
        country,
    )


def explain_crossing(
    request: CrossingRequest,
    notice: NoticeFacts,
    peers: dict[str, Peer],
    now: datetime,
    came_from: str | None = None,
) -> dict[str, Any]:
    """The JSON-ready account of a crossing: allowed or refused, by which agreement, and why;
    ``came_from``: the peer it would be relayed from (``relaying_peer``)."""
    relay = None
    if came_from is not None:
        asked = replace(request, direction=Direction.RECEIVE, peer=came_from)
        relay = decide_relay(asked, peers, now)
        decision = relay.onward if relay.allowed else relay.refusal
    else:
        decision = decide_crossing(request, peers, now)
    return {
        "crossing": {
            "direction": request.direction.value,
            "channel": request.channel,
            "marking": request.marking.value,
            "jurisdiction": notice.jurisdiction,
            "country": request.country,
            "sender": notice.sender,
            "organisation_kind": request.organisation_kind,
        },
        "allowed": decision.allowed,
        "code": decision.code,
        "reason": decision.reason,
        "peer": decision.peer,
        "agreement": decision.agreement,
        "agreement_crossing": decision.crossing,
        "forwarding": FORWARDING if relay is None else RELAYING,
    } | (
        {}
        if relay is None
        else {
            "relay": {
                "from": came_from,
                "received_under": relay.received.agreement,
                "received_crossing": relay.received.crossing,
                "to": relay.onward.peer,
            }
        }
    )


def crossing_text(report: dict[str, Any]) -> str:
    c = report["crossing"]
    verdict = "MAY cross" if report["allowed"] else "may NOT cross"
    lines = [
        f"Notice on {c['channel']} (TLP:{c['marking']}) for {c['jurisdiction']} leaves the "
        f"country: it {verdict}.",
        f"  {report['reason']}",
    ]
    relay = report.get("relay")
    if relay is not None:
        lines.append(
            f"  relayed: from {relay['from']} (agreement {relay['received_under']}) "
            f"on to {relay['to'] or 'no peer'}"
        )
    if report["peer"]:
        lines.append(f"  peer {report['peer']}, agreement {report['agreement']}")
    lines.append(f"Note: {report['forwarding']}.")
    return "\n".join(lines)
