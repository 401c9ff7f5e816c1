"""The hub's relay: a notice received from one peer goes on to the peer of its country.

A relay is decided by ``crossing.decide_relay`` (received under the first peer's agreement,
which says ``relay``; sent under the next peer's, as any crossing). What is written, in the
transaction that received it (``receive.Receiver._relay``):
- the notice as it came — metadata, ciphertext, the agency's signature and signed values, the
  sending country's signed directory on the crossing row — and **no delivery**: nothing is
  routed to roles here;
- the data key, opened in memory from the wrap for this broker's escrow, wrapped for the next
  peer's pinned escrow key (audited ``escrow.used``, purpose ``federation.relay``). The wrap for
  this broker's escrow is kept only when the agreement says ``keep_escrow``; otherwise nothing
  kept here opens the notice once this transaction commits, and once the next peer holds it the
  forwarder drops its ciphertext and wraps too (``notice.relay_body_dropped``, with the
  ciphertext's SHA-256): the hub keeps metadata only;
- a ``peer`` outbox row to the next peer (the forwarder sends the stored row with the *origin's*
  directory, so the final receiver checks the sending country's root, not this broker's), and
  the status row back to the peer it came from (``reporter.py`` reports what the next peer
  reported: this broker has no roles of its own in it);
- ``notice.received_from_peer`` and ``notice.relayed`` with both peers' ids and agreement lines.
Invariant: a relayed notice's body is never decrypted to disk here, and its id, the agency's
evidence and the origin directory go on unchanged (the ciphertext's associated data binds them).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.crypto.envelope import wrap_many
from broker.crypto.keys import fingerprint
from broker.domain.notice import NoticeFacts
from broker.domain.writes import KeyWrap, NewNotice, NonceUse
from broker.errors import Forbidden
from broker.federation.agreements import Peer, PeerKind
from broker.federation.crossing import RelayDecision
from broker.federation.forward import KIND, peer_wrap_id
from broker.federation.reporter import status_row
from broker.service.intake import ESCROW
from broker.store import federation_repo, rows

REFUSED = "this notice may not cross the border"


@dataclass(frozen=True, slots=True)
class Relay:
    """What a relay is made of: where it came from, where it goes, and what it carries."""

    came_from: Peer
    onward: Peer
    decision: RelayDecision
    payload: dict[str, Any]
    facts: NoticeFacts
    data_key: bytes  # in memory only
    escrow_key_id: str


def origin_country(peer: Peer, payload: dict[str, Any]) -> str | None:
    """The country whose directory a notice from ``peer`` carries: the one a hub names, else the
    national peer's own."""
    named = payload["origin"].get("country")
    if isinstance(named, str):
        return named
    return peer.countries[0] if peer.kind is PeerKind.NATIONAL else None


def relay_rows(
    relay: Relay, notice: NewNotice, nonce: NonceUse, now: datetime
) -> tuple[Any, dict[str, Any]]:
    """The write of a relayed notice and its crossing row (see the module docstring)."""
    onward = relay.onward
    if onward.url is None or onward.escrow_key is None:
        raise Forbidden(
            REFUSED,
            reason=f"peer {onward.id} declares no url and escrow_key: nothing is relayed to it",
        )
    [sealed] = wrap_many(relay.data_key, [onward.escrow_key])
    wraps = [KeyWrap(peer_wrap_id(onward.id), fingerprint(onward.escrow_key), sealed)]
    keep = relay.came_from.agreement.keep_escrow
    if keep:
        wraps.append(KeyWrap(ESCROW, relay.escrow_key_id, _b64(relay.payload["wrap"]["sealed"])))
    outbox: list[dict[str, Any]] = [_forward_row(notice.id, onward.id, now)]
    if relay.came_from.url is not None:
        outbox.append(status_row(notice.id, relay.came_from.id, relay.payload["notice_id"], now))
    write = rows.notice_write(
        notice,
        wraps,
        [],
        nonce,
        None,
        cancels=notice.supersedes if notice.kind == "cancel" else None,
        audit=_events(relay, keep, now),
        outbox=outbox,
    )
    origin = relay.payload["origin"]
    crossing = federation_repo.crossing_row(
        notice_id=notice.id,
        peer=relay.came_from.id,
        direction="receive",
        peer_notice_id=relay.payload["notice_id"],
        agreement=str(relay.decision.received.agreement),
        answer=_answer(relay, notice.id),
        now=now,
        origin=(_b64(origin["root"]), _b64(origin["bindings"])),
        origin_country=origin_country(relay.came_from, relay.payload),
        relay_to=onward.id,
    )
    return write, crossing


def _forward_row(notice_id: str, peer: str, now: datetime) -> dict[str, Any]:
    return {
        "notice_id": notice_id,
        "contact_id": None,
        "kind": KIND,
        "target": peer,
        "msg_id": notice_id,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _answer(relay: Relay, notice_id: str) -> dict[str, Any]:
    onward = relay.decision.onward
    return {
        "id": notice_id,
        "peer_notice_id": relay.payload["notice_id"],
        "recipient_count": 0,
        "relayed": {
            "peer": onward.peer,
            "agreement": onward.agreement,
            "agreement_crossing": onward.crossing,
            "state": "queued",
        },
    }


def _events(relay: Relay, keep: bool, now: datetime) -> list[AuditEvent]:
    came, onward = relay.decision.received, relay.decision.onward
    obj = f"notice:{relay.facts.id}"
    actor = f"peer:{relay.came_from.id}"
    return [
        AuditEvent(
            now,
            actor,
            "notice.received_from_peer",
            obj,
            channel=relay.facts.channel,
            decision="allow",
            reason=came.code,
            details={
                "peer": relay.came_from.id,
                "peer_notice_id": relay.payload["notice_id"],
                "agreement": came.agreement,
                "agreement_crossing": came.crossing,
                "sender": relay.facts.sender,
                "roles": [],
                "relay_to": relay.onward.id,
            },
        ),
        AuditEvent(
            now,
            actor,
            "notice.relayed",
            obj,
            channel=relay.facts.channel,
            decision="allow",
            reason=onward.code,
            details={
                "from_peer": relay.came_from.id,
                "to_peer": relay.onward.id,
                "received_under": f"{came.agreement}#{came.crossing}",
                "sent_under": f"{onward.agreement}#{onward.crossing}",
                "jurisdiction": relay.facts.jurisdiction,
                "sender": relay.facts.sender,
                "origin_country": origin_country(relay.came_from, relay.payload),
            },
        ),
        AuditEvent(
            now,
            "broker",
            "escrow.used",
            obj,
            channel=relay.facts.channel,
            details={
                "purpose": "federation.relay",
                "escrow_key": relay.escrow_key_id,
                "rewrapped_for_peer": relay.onward.id,
                "peer_escrow_key": fingerprint(relay.onward.escrow_key or b""),
                "escrow_wrap_kept": keep,
            },
        ),
    ]


def _b64(value: Any) -> bytes:
    return base64.b64decode(str(value), validate=True)
