"""The receiving side of a border crossing: ``POST /v1/federation/notices`` from a declared peer.

Checked in this order; the first failure refuses, audited, and nothing is stored:
1. the request is signed (RFC 9421) by the broker key a peer file pins, over method, target URI,
   Content-Digest, Content-Type and Idempotency-Key, and the digest matches the body — otherwise
   one 401, whatever failed (an unknown key, an altered body, a replay outside the skew);
2. a notice already received from this peer under this id answers its first answer again (200),
   so a forwarder's retry never makes a second notice;
3. the origin: the root is the one the peer file pins for the country it names
   (``Peer.origin_pin``: a national peer's ``directory_root``; through the hub, the member's
   ``member_roots`` entry), its key bindings bind the agency key to the sender
   (``federation/origin.py``), and the sender is an organisation of that country — 403 otherwise;
4. the data key opens with this broker's escrow key, the ciphertext with the notice's associated
   data, the decrypted bytes match the agency's Content-Digest and its RFC 9421 signature
   verifies under the bound key; the signed document agrees with the metadata — 403 otherwise;
5. ``decide_crossing(direction=receive)`` for the peer it came from — 403 with its reason; or,
   when that peer's agreement says ``relay`` (the hub), ``decide_relay`` for both halves and
   the notice goes on to the next peer instead of step 6 (``relay.py``);
6. this broker's own policy routes it to its own roles (``policy/route.route``: Cedar
   ``receive``; the within-country guard allows them, the notice's country being theirs).
An update or cancel must name a notice received from the same peer (active, same agency and
channel; 403 otherwise); it is routed afresh, and the earlier notice's roles are asked again
through ``deliver_to`` now (``_route``): a former holder gets nothing, a successor gets it.
The data key is then re-wrapped for each recipient from the escrow wrap (audited as
``escrow.used``), the ciphertext stored as it came, and ``notice.received_from_peer`` records the
peer, its notice id, the agreement line and the roles reached. The plaintext exists only in
memory, for steps 4 and 6.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.audit.events import AuditEvent
from broker.audit.notice_events import Posting, accepted
from broker.config import Limits
from broker.crypto.envelope import (
    AEAD,
    DecryptionFailed,
    associated_data,
    open_sealed,
    unwrap,
    wrap_many,
)
from broker.crypto.httpsig import (
    SignatureInvalid,
    VerifiedSignature,
    digest_matches,
    parse_signatures,
    verify_base,
)
from broker.domain.notice import NoticeFacts
from broker.domain.writes import KeyWrap, NewDelivery, NewNotice, NonceUse
from broker.errors import AuthenticationFailed, BadRequest, Forbidden, LiaisonError, TrustRefused
from broker.federation.agreements import Direction, Peer
from broker.federation.crossing import (
    CrossingDecision,
    CrossingRequest,
    RelayDecision,
    decide_crossing,
    decide_relay,
    relays,
)
from broker.federation.origin import origin_binding
from broker.federation.peer_auth import authenticated_peer, refused_event
from broker.federation.relay import Relay, origin_country, relay_rows
from broker.federation.reporter import status_row
from broker.input import parse_json
from broker.logs import get_logger
from broker.policy.route import Route, check_notice, deliver_to, route
from broker.service.intake import ESCROW, Accepted, Announcements, IncomingRequest
from broker.service.notices import notice_facts_from_document
from broker.service.refusals import Refusals
from broker.state import BrokerState, View
from broker.store import audit_repo, deliveries_repo, federation_repo, intake_repo, rows

log = get_logger("liaison.federation")

REFUSED = "this notice may not cross the border"
FIELDS = {
    "notice_id": str,
    "sender": str,
    "sender_key_id": str,
    "channel": str,
    "jurisdiction": str,
    "severity": str,
    "marking": str,
    "policy_hash": str,
    "aead": str,
    "nonce": str,
    "ciphertext": str,
    "wrap": dict,
    "signature_input": str,
    "signature": str,
    "signed_values": dict,
    "content_digest": str,
    "origin": dict,
}


class Receiver:
    def __init__(
        self,
        state: BrokerState,
        *,
        escrow_private: bytes,
        escrow_key_id: str,
        limits: Limits,
        refusals: Refusals,
        on_committed: Callable[[str], Awaitable[None]] | None = None,
        announcements: Announcements | None = None,
    ) -> None:
        self.state = state
        self.escrow_private = escrow_private  # in memory only (service/custody.py)
        self.escrow_key_id = escrow_key_id
        self.limits = limits
        self.refusals = refusals
        self.on_committed = on_committed
        self.announcements = announcements

    async def receive(self, request: IncomingRequest, now: datetime) -> Accepted:
        view = self.state.view
        peer, signature = await authenticated_peer(
            view, request, now, self.limits.clock_skew_seconds, self.refusals
        )
        try:
            return await self._accept(view, peer, signature, request, now)
        except LiaisonError as e:
            if not isinstance(e, AuthenticationFailed):
                actor = f"peer:{peer.id}"
                event = refused_event(
                    now, actor, "notice.receive_refused", "federation", e, request
                )
                await audit_repo.append_events(self.state.engine, [event])
            raise

    async def _accept(
        self,
        view: View,
        peer: Peer,
        signature: VerifiedSignature,
        request: IncomingRequest,
        now: datetime,
    ) -> Accepted:
        payload = _payload(request.body, self.limits.max_json_depth)
        peer_notice_id = payload["notice_id"]
        if request.headers.get("idempotency-key") != peer_notice_id:
            raise BadRequest("Idempotency-Key must be the peer's notice id")
        earlier = await federation_repo.received(self.state.engine, peer.id, peer_notice_id)
        if earlier is not None:
            return Accepted(earlier.answer, replayed=True)
        data_key, facts, document = self._open(payload, peer, now)
        asked = self._request(view, facts, payload, peer)
        if relays(asked, view.policies.peers):  # the hub: on to the peer of its country
            if "in_reply_to" in document:
                raise Forbidden(REFUSED, reason="answers to a request do not cross the hub yet")
            relay = decide_relay(asked, view.policies.peers, now)
            if not relay.allowed:
                raise Forbidden(REFUSED, reason=relay.refusal.reason)
            superseded = await self._superseded(peer, facts, document, payload)
            write, crossing = await self._relay(
                view, peer, signature, payload, facts, data_key, relay, now, superseded
            )
        else:
            decision = decide_crossing(asked, view.policies.peers, now)
            if not decision.allowed:
                raise Forbidden(REFUSED, reason=decision.reason)
            superseded = await self._superseded(peer, facts, document, payload)
            facts = await self._answering(peer, facts, document)
            routed = _route(view, facts, superseded, now)
            if not routed.recipients:
                raise Forbidden(REFUSED, reason="this broker's policy routes it to no role")
            write, crossing = self._write(
                view,
                peer,
                signature,
                payload,
                document,
                facts,
                data_key,
                routed,
                decision,
                now,
                superseded,
            )
        try:
            await federation_repo.commit_crossing(self.state.engine, write, crossing)
        except federation_repo.CrossingRace:
            earlier = await federation_repo.received(self.state.engine, peer.id, peer_notice_id)
            if earlier is None:
                raise
            return Accepted(earlier.answer, replayed=True)
        log.info("notice_received_from_peer", notice_id=facts.id, peer=peer.id)
        if self.on_committed is not None:
            try:
                await self.on_committed(facts.id)
            except LiaisonError:
                log.warning("notice_push_failed", notice_id=facts.id)
        return Accepted(json.loads(crossing["answer"]))

    async def _answering(
        self, peer: Peer, facts: NoticeFacts, document: dict[str, Any]
    ) -> NoticeFacts:
        """An answer (``in_reply_to``): it goes to the role that asked, so the request it names
        must be one this broker forwarded to this very peer, on the same channel, addressed to
        the answering agency, naming the role that asked. Attacker: a peer (or its host) that
        would reach a role of its choosing here by naming another request, or none."""
        named = document.get("in_reply_to")
        if named is None:
            return facts
        engine = self.state.engine
        crossing = await federation_repo.crossing_of(engine, str(named))
        request = (
            None if crossing is None else await intake_repo.get_notice(engine, crossing.notice_id)
        )
        if (
            crossing is None
            or request is None
            or crossing.direction != "send"
            or crossing.peer != peer.id
            or request.channel != facts.channel
            or facts.sender not in request.addressees
            or request.requesting_role is None
        ):
            raise Forbidden(
                REFUSED,
                reason=f"'in_reply_to' names no request this broker sent to {peer.id}, "
                "addressed to the answering agency",
            )
        return replace(facts, reply_to_role=request.requesting_role)

    async def _superseded(
        self, peer: Peer, facts: NoticeFacts, document: dict[str, Any], payload: dict[str, Any]
    ) -> Superseded | None:
        """An update or cancel: the notice received from this peer that it supersedes, which
        must be active, from the same agency, on the same channel; and the roles it reached."""
        named = document.get("supersedes")
        if payload.get("supersedes") != named:
            raise Forbidden(REFUSED, reason="supersedes differs from what the agency signed")
        if named is None:
            if document.get("cancel"):
                raise Forbidden(REFUSED, reason="a cancel names the notice it cancels")
            return None
        engine = self.state.engine
        crossing = await federation_repo.received(engine, peer.id, str(named))
        earlier = (
            None if crossing is None else await intake_repo.get_notice(engine, crossing.notice_id)
        )
        if (
            earlier is None
            or earlier.sender != facts.sender
            or earlier.status != "active"
            or earlier.channel != facts.channel
        ):
            raise Forbidden(REFUSED, reason="it updates no active notice received from this peer")
        deliveries = await deliveries_repo.deliveries_of(engine, earlier.id)
        return Superseded(
            "cancel" if document.get("cancel") else "update",
            earlier.id,
            tuple(dict.fromkeys(d.role for d in deliveries)),
        )

    def _open(
        self, payload: dict[str, Any], peer: Peer, now: datetime
    ) -> tuple[bytes, NoticeFacts, dict[str, Any]]:
        """Steps 3 and 4: the origin, then the bytes the agency signed, in memory."""
        origin = payload["origin"]
        country = origin.get("country")
        pin = peer.origin_pin(country if isinstance(country, str) else None)
        if pin is None:
            named = country if isinstance(country, str) else "a notice of its own"
            raise Forbidden(REFUSED, reason=f"peer {peer.id} pins no directory root for {named}")
        try:
            binding = origin_binding(
                _b64(origin.get("root")),
                _b64(origin.get("bindings")),
                pin=pin,
                key_id=payload["sender_key_id"],
                sender=payload["sender"],
                now=now,
            )
        except TrustRefused as e:
            raise Forbidden(REFUSED, reason=f"origin not verified: {e.message}") from e
        aad = associated_data(payload["notice_id"], payload["channel"], payload["policy_hash"])
        try:
            data_key = unwrap(_b64(payload["wrap"].get("sealed")), self.escrow_private)
            plaintext = open_sealed(
                _b64(payload["ciphertext"]), _b64(payload["nonce"]), aad, data_key
            )
        except DecryptionFailed as e:
            raise Forbidden(REFUSED, reason="the notice does not open with this escrow key") from e
        values = {str(k): str(v) for k, v in payload["signed_values"].items()}
        if not digest_matches(values.get("content-digest", ""), plaintext):
            raise Forbidden(REFUSED, reason="the content digest does not match the notice")
        if not _agency_signed(payload, values, binding.public):
            raise Forbidden(REFUSED, reason="the agency's signature does not verify")
        try:
            document = parse_json(plaintext)
        except (ValueError, UnicodeDecodeError) as e:
            raise Forbidden(REFUSED, reason="only JSON notices cross a border yet") from e
        facts = notice_facts_from_document(
            document, sender=payload["sender"], notice_id=payload["notice_id"]
        )
        for field in ("channel", "jurisdiction", "severity"):
            if document.get(field) != payload[field]:
                raise Forbidden(REFUSED, reason=f"the {field} differs from what the agency signed")
        return data_key, facts, document

    async def _relay(
        self,
        view: View,
        peer: Peer,
        signature: VerifiedSignature,
        payload: dict[str, Any],
        facts: NoticeFacts,
        data_key: bytes,
        decision: RelayDecision,
        now: datetime,
        superseded: Superseded | None,
    ) -> tuple[Any, dict[str, Any]]:
        """The rows that send an allowed relay on (``relay.py``)."""
        onward = view.policies.peers[str(decision.onward.peer)]
        if superseded is not None:
            earlier = await federation_repo.crossing_of(self.state.engine, superseded.notice_id)
            if earlier is None or earlier.relay_to != onward.id:
                raise Forbidden(REFUSED, reason="an update is relayed where its notice went")
        kind = superseded.kind if superseded else "notice"
        supersedes = superseded.notice_id if superseded else None
        notice = self._notice(view, payload, facts, (kind, supersedes), 0, now)
        return relay_rows(
            Relay(peer, onward, decision, payload, facts, data_key, self.escrow_key_id),
            notice,
            _nonce(peer, signature, self.limits),
            now,
        )

    def _request(
        self, view: View, facts: NoticeFacts, payload: dict[str, Any], peer: Peer
    ) -> CrossingRequest:
        """What the agreements are asked of a notice received from ``peer``."""
        directory = view.directory
        channel = check_notice(facts, directory, view.policies.channels)
        if payload["marking"] != channel.marking.value:
            raise Forbidden(REFUSED, reason="its marking is not this broker's for the channel")
        organisation = directory.organisations.get(facts.sender)
        came_from = origin_country(peer, payload)
        if organisation is not None and came_from is not None:
            # The directory carried must be the sender's own country's: a hub (or any peer)
            # cannot vouch for an agency of another country with a directory it pins.
            home = directory.country_of(organisation.jurisdiction)
            if home is not None and home != came_from:
                raise Forbidden(
                    REFUSED,
                    reason=f"the sender {facts.sender} is not of {came_from}, whose "
                    "directory the notice carries",
                )
        kind = organisation.kind if organisation else payload.get("sender_kind")
        lineage = (facts.jurisdiction, *(j.id for j in directory.ancestors(facts.jurisdiction)))
        return CrossingRequest(
            Direction.RECEIVE,
            channel.id,
            channel.marking,
            kind if isinstance(kind, str) else None,
            lineage,
            directory.country_of(facts.jurisdiction),
            peer=peer.id,
        )

    def _write(
        self,
        view: View,
        peer: Peer,
        signature: VerifiedSignature,
        payload: dict[str, Any],
        document: dict[str, Any],
        facts: NoticeFacts,
        data_key: bytes,
        routed: Route,
        decision: CrossingDecision,
        now: datetime,
        superseded: Superseded | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        channel = view.policies.channels[facts.channel]
        kind = superseded.kind if superseded else "notice"
        supersedes = superseded.notice_id if superseded else None
        contacts: dict[str, str] = {}
        for r in routed.recipients:
            contacts.setdefault(r.contact, r.key_id)
        publics = [view.directory.keys[k].public for k in contacts.values()]
        wraps = [
            KeyWrap(c, k, w)
            for (c, k), w in zip(contacts.items(), wrap_many(data_key, publics), strict=True)
        ]
        wraps.append(KeyWrap(ESCROW, self.escrow_key_id, _b64(payload["wrap"]["sealed"])))
        notice = self._notice(
            view, payload, facts, (kind, supersedes), len(contacts), now, document
        )
        answer = {
            "id": facts.id,
            "peer_notice_id": payload["notice_id"],
            "recipient_count": len(contacts),
            "policy_hash": view.policies.hash,
        }
        events = self._events(
            view, peer, payload, facts, routed, decision, wraps, now, (kind, supersedes)
        )
        outbox = (
            self.announcements(
                view, facts.id, channel, [(r.contact, r.role) for r in routed.recipients], now
            )
            if self.announcements is not None
            else []
        )
        if peer.url is not None:  # the per-role status goes back to the sender (reporter.py)
            outbox.append(status_row(facts.id, peer.id, payload["notice_id"], now))
        write = rows.notice_write(
            notice,
            wraps,
            [
                NewDelivery(r.contact, r.role, r.jurisdiction, r.rule, r.policy_ids, r.deputy)
                for r in routed.recipients
            ],
            _nonce(peer, signature, self.limits),
            None,
            cancels=supersedes if kind == "cancel" else None,
            audit=events,
            outbox=outbox,
        )
        crossing = federation_repo.crossing_row(
            notice_id=facts.id,
            peer=peer.id,
            direction="receive",
            peer_notice_id=payload["notice_id"],
            agreement=str(decision.agreement),
            answer=answer,
            now=now,
            origin=(_b64(payload["origin"]["root"]), _b64(payload["origin"]["bindings"])),
            origin_country=origin_country(peer, payload),
        )
        return write, crossing

    def _notice(
        self,
        view: View,
        payload: dict[str, Any],
        facts: NoticeFacts,
        kind_of: tuple[str, str | None],
        recipient_count: int,
        now: datetime,
        document: dict[str, Any] | None = None,
    ) -> NewNotice:
        """The notice as stored here: the sender's metadata, ciphertext and evidence as they came."""
        channel = view.policies.channels[facts.channel]
        kind, supersedes = kind_of
        return NewNotice(
            id=facts.id,
            sender=facts.sender,
            sender_key_id=payload["sender_key_id"],
            channel=facts.channel,
            jurisdiction=facts.jurisdiction,
            severity=facts.severity,
            marking=channel.marking.value,
            policy_hash=payload["policy_hash"],  # the sender's: the ciphertext is bound to it
            kind=kind,
            supersedes=supersedes,
            addressees=facts.addressees,
            # A request keeps the role that asked, so that its answer can go back to it; an answer
            # keeps the request it answers (checked by ``_answering``). None when relayed.
            requesting_role=(document or {}).get("requesting_role"),
            in_reply_to=(document or {}).get("in_reply_to"),
            created_at=now,
            expires_at=_parse_time(payload.get("expires_at")),
            retain_until=now + timedelta(days=channel.retention_days),
            recipient_count=recipient_count,
            aead=AEAD,
            aead_nonce=_b64(payload["nonce"]),
            ciphertext=_b64(payload["ciphertext"]),
            content_digest=payload["content_digest"],
            signature_input=payload["signature_input"],
            signature=payload["signature"],
            signed_values=payload["signed_values"],
            exercise=facts.exercise,  # from the signed document, never from the payload
        )

    def _events(
        self,
        view: View,
        peer: Peer,
        payload: dict[str, Any],
        facts: NoticeFacts,
        routed: Route,
        decision: CrossingDecision,
        wraps: list[KeyWrap],
        now: datetime,
        kind: tuple[str, str | None] = ("notice", None),
    ) -> list[AuditEvent]:
        actor = f"peer:{peer.id}"
        obj = f"notice:{facts.id}"
        posting = Posting(
            notice_id=facts.id,
            channel=facts.channel,
            jurisdiction=facts.jurisdiction,
            severity=facts.severity,
            kind=kind[0],
            supersedes=kind[1],
            sender=facts.sender,
            sender_key=payload["sender_key_id"],
            content_digest=payload["content_digest"],
            signature=_agency_signature(payload),
            policy_hash=routed.policy_hash,
            publish_policies=(),
            recipients=routed.recipients,
            not_reached=(),
            wrap_keys={w.recipient: w.key_id for w in wraps},
            escrow_key=self.escrow_key_id,
            exercise=facts.exercise,
        )
        return [
            AuditEvent(
                now,
                actor,
                "notice.received_from_peer",
                obj,
                channel=facts.channel,
                decision="allow",
                reason=decision.code,
                details={
                    "peer": peer.id,
                    "peer_notice_id": payload["notice_id"],
                    "agreement": decision.agreement,
                    "agreement_crossing": decision.crossing,
                    "sender": facts.sender,
                    "roles": sorted({r.role for r in routed.recipients}),
                },
            ),
            AuditEvent(
                now,
                "broker",
                "escrow.used",
                obj,
                channel=facts.channel,
                details={
                    "purpose": "federation.receive",
                    "escrow_key": self.escrow_key_id,
                    "rewrapped_for": len(wraps) - 1,
                },
            ),
            *accepted(posting, now, None),
        ]


@dataclass(frozen=True, slots=True)
class Superseded:
    kind: str  # update | cancel
    notice_id: str  # this broker's id of the notice it supersedes
    roles: tuple[str, ...]  # the roles that notice reached


def _route(view: View, facts: NoticeFacts, superseded: Superseded | None, now: datetime) -> Route:
    """This broker's own routing; an update or cancel also goes to the roles the earlier notice
    reached, through ``deliver_to`` now: to whoever acts for each role at this moment (a
    successor, a standing-in deputy), never a former holder — as a local update does."""
    routed = route(facts, view.authorizer, now)
    if superseded is None:
        return routed
    decided = {r.role for r in routed.recipients} | {n.role for n in routed.not_reached}
    more, missing = deliver_to(
        facts,
        [(role, "supersedes") for role in superseded.roles if role not in decided],
        view.authorizer,
        now,
    )
    return replace(
        routed,
        recipients=(*routed.recipients, *more),
        not_reached=(*routed.not_reached, *missing),
    )


def _agency_signed(payload: dict[str, Any], values: dict[str, str], public: bytes) -> bool:
    try:
        [parsed] = parse_signatures(
            {"signature-input": payload["signature_input"], "signature": payload["signature"]}
        )
    except (SignatureInvalid, ValueError):
        return False
    if parsed.params.get("keyid") != payload["sender_key_id"]:
        return False
    if not {"content-digest", "@method"} <= set(parsed.components):
        return False
    try:
        return verify_base(
            public,
            [(c, values[c]) for c in parsed.components],
            parsed.signature_params,
            parsed.signature,
        )
    except KeyError:
        return False


def _agency_signature(payload: dict[str, Any]) -> bytes:
    """The agency's raw signature bytes (checked already by ``_agency_signed``)."""
    [parsed] = parse_signatures(
        {"signature-input": payload["signature_input"], "signature": payload["signature"]}
    )
    return parsed.signature


def _payload(body: bytes, max_depth: int) -> dict[str, Any]:
    try:
        payload = parse_json(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("the body is not valid JSON") from e
    if not isinstance(payload, dict):
        raise BadRequest("a forwarded notice is a JSON object")
    for name, kind in FIELDS.items():
        if not isinstance(payload.get(name), kind):
            raise BadRequest(f"a forwarded notice needs {name}")
    return payload


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest("a forwarded notice's bytes are base64") from e


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as e:
        raise BadRequest("expires_at is not a time") from e


def _nonce(peer: Peer, signature: VerifiedSignature, limits: Limits) -> NonceUse:
    """The peer's request nonce, kept as long as a replay could still pass the clock check."""
    return NonceUse(
        f"peer:{peer.id}",
        signature.nonce,
        datetime.fromtimestamp(signature.created, tz=UTC)
        + timedelta(seconds=2 * limits.clock_skew_seconds),
    )
