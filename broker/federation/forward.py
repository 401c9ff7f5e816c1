"""The sending side of a border crossing: queue at intake, then forward, exactly once.

At intake (``Forwarding.accept``, the hook ``service/intake.py`` calls once the draft is read), a
notice whose jurisdiction lies in another country (``explain.outbound_crossing``, the same test
``liaison policy explain`` makes) is decided by the agreements (``decide_crossing``, send). A
refusal is a 403 whose ``reason`` is the one ``policy explain`` prints. An allowed crossing is
not routed here (this broker's roles are not its recipients, and the within-country guard would
refuse them all): its body is sealed as any notice's, under a fresh data key, and the key is
wrapped twice — for this broker's escrow (as every notice) and for the **peer's escrow key**,
pinned in the peer file. Notice, wraps, the request's nonce and idempotency record, the audit
events (``notice.posted``, ``notice.forward_queued``), the crossing row and one outbox row of
kind ``peer`` are committed in one transaction, then 201.

Why the peer's escrow key and not its recipients' keys: the sending side does not know who will
receive the notice over there — the peer routes by its own policy to its own roles, and does not
publish its recipients' keys. The receiving broker opens the wrap with its escrow key and
re-wraps for its recipients (audited as escrow use), exactly as a key change does. The body
stays ciphertext on both disks; the plaintext exists only in memory, at intake here and at
routing there.

The forwarder (``PeerForwarder.attempt``, run by the outbox worker for ``peer`` rows: retries
with backoff and jitter, leases, dead letters and ``liaison outbox replay``) POSTs the stored
ciphertext, the peer's wrap, the agency's original ``Signature-Input``, ``Signature`` and
signed values (its Content-Digest included) unchanged, and this broker's signed directory
(``trust/root.json`` and ``bindings.json``) to ``URL/v1/federation/notices``, signed (RFC 9421)
with this broker's own key under ``Idempotency-Key: <notice id>``. The peer answers the same
201 to a repeat, so an outage delays a notice and never loses or doubles it.

An update or cancel crosses the same way, under the same decision, when the notice it names is
this agency's, active, on the same channel and was forwarded to the same peer (``_earlier``);
its kind and ``supersedes`` travel with it, and a cancel marks the notice cancelled here too.
A request (``requesting_role``) and an answer to one (``in_reply_to``) cross with the checks
intake's plan makes locally (``_asking_and_answering``): the role that asks is the sender's,
and an answer names a request received from the peer it goes back to, addressed to the
answering agency (the receiving broker checks it against the request it sent,
``receive._answering``); not through the hub yet. A recipient's reply (with an
acknowledgement) to a notice received from a peer flows back with the status report, sealed for
the sending agency (``replies.py``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from broker.audit.events import AuditEvent
from broker.cap.mapping import CAP_MEDIA_TYPE
from broker.config import Limits
from broker.crypto.envelope import associated_data, seal, wrap_many
from broker.crypto.httpsig import content_digest, sign_request
from broker.crypto.keys import KeyPair, fingerprint
from broker.domain.delivery import WebhookResult
from broker.domain.notice import new_notice_id
from broker.domain.writes import KeyWrap
from broker.errors import Forbidden, NoticeInvalid, SupersedesInvalid
from broker.federation.agreements import Peer, PeerKind
from broker.federation.crossing import CrossingDecision, decide_crossing
from broker.federation.explain import outbound_crossing
from broker.logs import get_logger
from broker.policy.payload import payload_violations
from broker.service.auth import Agency
from broker.service.intake import ESCROW, Accepted, IncomingRequest
from broker.service.intake_plan import Draft, Plan, _expiry, check_requesting_role, media_type
from broker.service.intake_write import Sealed, notice_write
from broker.state import BrokerState, View
from broker.store import federation_repo
from broker.store import intake_repo as repo
from broker.store.outbox_repo import OutboxItem

log = get_logger("liaison.federation")

PATH = "/v1/federation/notices"
KIND = "peer"  # the outbox rows of forwarded notices
COMPONENTS = ("@method", "@target-uri", "content-digest", "content-type", "idempotency-key")


def peer_wrap_id(peer: str) -> str:
    return f"peer:{peer}"


class PeerPoster(Protocol):
    """POSTs signed bytes to a peer broker (``adapters/delivery/peer.py``); never raises for the
    peer's failures: they come back in the result."""

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, *, seconds: float
    ) -> WebhookResult: ...

    async def close(self) -> None: ...


class Forwarding:
    """The intake hook: a crossing is refused with the agreement's reason, or queued."""

    def __init__(
        self, state: BrokerState, *, escrow_public: bytes, escrow_key_id: str, limits: Limits
    ) -> None:
        self.state = state
        self.escrow_public = escrow_public
        self.escrow_key_id = escrow_key_id
        self.limits = limits

    async def accept(
        self, view: View, agency: Agency, request: IncomingRequest, draft: Draft, now: datetime
    ) -> Accepted | None:
        """None when the notice stays in the country (or no peer is declared): intake goes on."""
        decision = self.decide(view, draft, now)
        if decision is None:
            return None
        if media_type(request.headers) == CAP_MEDIA_TYPE:
            # The receiving broker routes by the JSON document it opens; it does not map a CAP
            # alert yet, and would refuse it after a 201 here. Said now, before anything is kept.
            raise Forbidden(
                "this notice may not cross the border",
                reason="CAP alerts do not cross a border yet: post it as a JSON notice",
            )
        if draft.idempotency_key:
            previous = await repo.find_idempotent(
                self.state.engine, agency.organisation, draft.idempotency_key
            )
            if previous is not None and previous.request_hash == draft.request_hash:
                return Accepted(previous.response, replayed=True)
        peer = view.policies.peers[str(decision.peer)]
        await self._asking_and_answering(view, agency, draft, decision)
        earlier = await self._earlier(agency, draft, decision)
        write, crossing = self._write(view, agency, request, draft, decision, peer, now, earlier)
        try:
            await federation_repo.commit_crossing(self.state.engine, write, crossing)
        except repo.IdempotencyRace:
            previous = await repo.find_idempotent(
                self.state.engine, agency.organisation, str(draft.idempotency_key)
            )
            if previous is None or previous.request_hash != draft.request_hash:
                raise
            return Accepted(previous.response, replayed=True)
        log.info("notice_forward_queued", notice_id=write.notice["id"], peer=peer.id)
        return Accepted(json.loads(crossing["answer"]))

    def decide(self, view: View, draft: Draft, now: datetime) -> CrossingDecision | None:
        """The agreement's decision on a crossing, or None; a refusal raised as a 403."""
        peers = view.policies.peers
        if not peers:
            return None  # no federation declared: the broker behaves as before
        wanted = outbound_crossing(
            draft.facts, view.directory, view.policies.channels, sender_known=True
        )
        if wanted is None:
            return None
        decision = decide_crossing(wanted, peers, now)
        if not decision.allowed:
            raise Forbidden("this notice may not cross the border", reason=decision.reason)
        peer = peers[str(decision.peer)]
        if peer.url is None or peer.escrow_key is None:
            raise Forbidden(
                "this notice may not cross the border",
                reason=f"peer {peer.id} declares no url and escrow_key: nothing is forwarded to it",
            )
        document = draft.document
        if document.get("cancel") and not document.get("supersedes"):
            raise Forbidden(
                "this notice may not cross the border", reason="a cancel names what it cancels"
            )
        if "in_reply_to" in document and peer.kind is PeerKind.HUB:
            raise Forbidden(
                "this notice may not cross the border",
                reason="answers to a request do not cross the hub yet",
            )
        return decision

    async def _asking_and_answering(
        self, view: View, agency: Agency, draft: Draft, decision: CrossingDecision
    ) -> None:
        """What intake's plan checks for a local request or answer, for one that crosses: the
        role that asks is the sender's own (its answer will reach that role over there), and an
        answer names a request received here from the peer it goes back to, addressed to this
        agency, on the same channel — as ``intake_plan._with_reply_role`` requires locally."""
        document = draft.document
        check_requesting_role(view, document, agency.organisation)
        named = document.get("in_reply_to")
        if named is None:
            return
        engine = self.state.engine
        crossing = await federation_repo.crossing_of(engine, str(named))
        request = await repo.get_notice(engine, str(named)) if crossing is not None else None
        if (
            crossing is None
            or request is None
            or crossing.direction != "receive"
            or crossing.relay_to is not None
            or crossing.peer != decision.peer
            or agency.organisation not in request.addressees
            or request.channel != draft.facts.channel
            or request.requesting_role is None
        ):
            raise SupersedesInvalid(
                "'in_reply_to' does not name a request addressed to this agency"
            )

    async def _earlier(
        self, agency: Agency, draft: Draft, decision: CrossingDecision
    ) -> tuple[str, str] | None:
        """An update or cancel: (its kind, the notice it supersedes), which must be this
        agency's, active, on the same channel, and forwarded to the same peer; None otherwise."""
        earlier_id = draft.document.get("supersedes")
        if earlier_id is None:
            return None
        engine = self.state.engine
        earlier = await repo.get_notice(engine, str(earlier_id))
        crossing = await federation_repo.crossing_of(engine, str(earlier_id))
        if (
            earlier is None
            or earlier.sender != agency.organisation
            or crossing is None
            or crossing.direction != "send"
        ):
            raise SupersedesInvalid("'supersedes' does not name an earlier notice of this agency")
        if crossing.peer != decision.peer:
            raise SupersedesInvalid("an update crosses to the peer its notice went to")
        if earlier.status != "active":
            raise SupersedesInvalid(f"the earlier notice is {earlier.status}")
        if earlier.channel != draft.facts.channel:
            raise SupersedesInvalid("an update must stay on the channel of the notice it updates")
        return ("cancel" if draft.document.get("cancel") else "update"), earlier.id

    def _write(
        self,
        view: View,
        agency: Agency,
        request: IncomingRequest,
        draft: Draft,
        decision: CrossingDecision,
        peer: Peer,
        now: datetime,
        earlier: tuple[str, str] | None = None,
    ) -> tuple[repo.NoticeWrite, dict[str, Any]]:
        channel = view.policies.channels[draft.facts.channel]
        kind, supersedes = earlier or ("notice", None)
        if kind != "cancel" or draft.document["body"]:
            violations = payload_violations(channel, draft.document["body"])
            if violations:
                raise NoticeInvalid(violations)
        notice_id = new_notice_id(now)
        facts = replace(draft.facts, id=notice_id)
        response = {
            "id": notice_id,
            "channel": facts.channel,
            "recipient_count": 0,
            "policy_hash": view.policies.hash,
            "status_url": f"/v1/notices/{notice_id}/status",
            "not_reached": [],
            "forwarded": {
                "peer": peer.id,
                "agreement": decision.agreement,
                "agreement_crossing": decision.crossing,
                "state": "queued",
            },
        }
        planned = Plan(
            facts,
            channel,
            kind,
            supersedes,
            (),
            (),
            view.policies.hash,
            (),
            _expiry(draft.document, now),
            response,
        )
        sealed = self._seal(view, facts.id, facts.channel, request.body, peer)
        outbox = [
            {
                "notice_id": notice_id,
                "contact_id": None,
                "kind": KIND,
                "target": peer.id,
                "msg_id": notice_id,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        ]
        write = notice_write(
            agency, draft, planned, sealed, now, self.limits, request.request_id, outbox
        )
        queued = AuditEvent(
            now,
            f"agency:{agency.organisation}",
            "notice.forward_queued",
            f"notice:{notice_id}",
            channel=facts.channel,
            decision="allow",
            reason=decision.code,
            details={
                "peer": peer.id,
                "agreement": decision.agreement,
                "agreement_crossing": decision.crossing,
                "jurisdiction": facts.jurisdiction,
                "peer_escrow_key": fingerprint(peer.escrow_key or b""),
            },
            request=request.request_id,
        )
        write = replace(
            write, audit=[*write.audit, queued], cancels=supersedes if kind == "cancel" else None
        )
        crossing = federation_repo.crossing_row(
            notice_id=notice_id,
            peer=peer.id,
            direction="send",
            peer_notice_id=notice_id,
            agreement=str(decision.agreement),
            answer=response,
            now=now,
        )
        return write, crossing

    def _seal(self, view: View, notice_id: str, channel: str, body: bytes, peer: Peer) -> Sealed:
        """The body under a fresh data key, wrapped for this broker's escrow and the peer's."""
        sealed = seal(body, associated_data(notice_id, channel, view.policies.hash))
        peer_key = peer.escrow_key or b""
        own, theirs = wrap_many(sealed.data_key, [self.escrow_public, peer_key])
        return Sealed(
            sealed.ciphertext,
            sealed.nonce,
            [
                KeyWrap(peer_wrap_id(peer.id), fingerprint(peer_key), theirs),
                KeyWrap(ESCROW, self.escrow_key_id, own),  # last: the escrow, as intake's
            ],
        )


# -- the forwarder ------------------------------------------------------------------------------


class PeerForwarder:
    """Sends one ``peer`` outbox row: the stored notice, signed with this broker's key."""

    def __init__(
        self,
        state: BrokerState,
        poster: PeerPoster,
        broker_key: KeyPair,
        trust_dir: Path,
        *,
        timeout_seconds: float,
    ) -> None:
        self.state = state
        self.poster = poster
        self.broker_key = broker_key
        self.trust_dir = trust_dir
        self.timeout_seconds = timeout_seconds

    async def attempt(self, item: OutboxItem, now: datetime) -> WebhookResult:
        peer = self.state.view.policies.peers.get(item.target)
        if peer is None or peer.url is None:
            return WebhookResult(410, f"peer {item.target} is no longer declared with a url")
        row = await federation_repo.forwarded_notice(self.state.engine, item.notice_id)
        if row is None or row["ciphertext"] is None:
            return WebhookResult(410, "the notice is gone (shredded or removed)")
        wrap = next((w for w in row["wraps"] if w["recipient_id"] == peer_wrap_id(peer.id)), None)
        if wrap is None:
            return WebhookResult(410, f"no wrap for peer {peer.id}")
        crossing = await federation_repo.crossing_of(self.state.engine, item.notice_id)
        relayed = crossing is not None and crossing.relay_to == peer.id
        payload = (
            self.relayed_payload(row, wrap, crossing)
            if relayed and crossing is not None
            else self.payload(row, wrap)
        )
        body = json.dumps(payload, sort_keys=True).encode()
        url = peer.url.rstrip("/") + PATH
        headers = signed_headers(url, body, item.notice_id, self.broker_key, now)
        result = await self.poster.post(url, headers, body, seconds=self.timeout_seconds)
        if relayed and result.delivered and crossing is not None:
            await self._relayed(crossing, now)
        return result

    async def _relayed(self, crossing: federation_repo.CrossingRecord, now: datetime) -> None:
        """The next peer holds a relayed notice: unless the agreement it came under says
        ``keep_escrow``, the hub drops its ciphertext and wraps and keeps the metadata only."""
        came_from = self.state.view.policies.peers.get(crossing.peer)
        if came_from is None or came_from.agreement.keep_escrow:
            return

        def event(digest: str) -> AuditEvent:
            return AuditEvent(
                now,
                "broker",
                "notice.relay_body_dropped",
                f"notice:{crossing.notice_id}",
                details={"to_peer": crossing.relay_to, "ciphertext_sha256": digest},
            )

        await federation_repo.drop_relayed_body(self.state.engine, crossing.notice_id, event)

    def payload(self, row: dict[str, Any], wrap: dict[str, Any]) -> dict[str, Any]:
        organisation = self.state.view.directory.organisations.get(row["sender_id"])
        return crossing_payload(
            row,
            wrap,
            organisation.kind if organisation else None,
            (self.trust_dir / "root.json").read_bytes(),
            (self.trust_dir / "bindings.json").read_bytes(),
        )

    def relayed_payload(
        self, row: dict[str, Any], wrap: dict[str, Any], crossing: federation_repo.CrossingRecord
    ) -> dict[str, Any]:
        """A relayed notice goes on with the directory it came with (the sending country's),
        named by country, never this broker's: the final receiver checks the agency's key
        against the root of the country it came from."""
        organisation = self.state.view.directory.organisations.get(row["sender_id"])
        return crossing_payload(
            row,
            wrap,
            organisation.kind if organisation else None,
            crossing.origin_root or b"",
            crossing.origin_bindings or b"",
            origin_country=crossing.origin_country,
        )

    async def close(self) -> None:
        await self.poster.close()


def crossing_payload(
    row: dict[str, Any],
    wrap: dict[str, Any],
    sender_kind: str | None,
    root: bytes,
    bindings: bytes,
    *,
    origin_country: str | None = None,
) -> dict[str, Any]:
    """What crosses: metadata, ciphertext and the peer's wrap, the agency's evidence as it was
    signed, and this broker's signed directory (the origin the recipient checks)."""
    return {
        "notice_id": row["id"],
        "sender": row["sender_id"],
        "sender_kind": sender_kind,
        "sender_key_id": row["sender_key_id"],
        "channel": row["channel"],
        "jurisdiction": row["jurisdiction_id"],
        "severity": row["severity"],
        "marking": row["marking"],
        "created_at": _time(row["created_at"]),
        "kind": row["kind"],  # notice, update or cancel
        "supersedes": row["supersedes_id"],  # this broker's id, as the peer received it
        "expires_at": _time(row["expires_at"]),
        "policy_hash": row["policy_hash"],  # the associated data binds the ciphertext to it
        "aead": row["aead"],
        "nonce": _b64(row["aead_nonce"]),
        "ciphertext": _b64(row["ciphertext"]),
        "wrap": {"key_id": wrap["key_id"], "sealed": _b64(wrap["wrap"])},
        "signature_input": row["signature_input"],
        "signature": row["signature"],
        "signed_values": json.loads(row["signed_values"]),
        "content_digest": row["content_digest"],
        "origin": {"root": _b64(root), "bindings": _b64(bindings)}
        | ({} if origin_country is None else {"country": origin_country}),
    }


def signed_headers(
    url: str, body: bytes, idempotency_key: str, key: KeyPair, now: datetime
) -> dict[str, str]:
    """The headers of a forward: digest, type, key, and this broker's RFC 9421 signature."""
    headers = {
        "content-type": "application/json",
        "content-digest": content_digest(body),
        "idempotency-key": idempotency_key,
    }
    return headers | sign_request(
        method="POST",
        url=url,
        headers=headers,
        key=key.private,  # type: ignore[arg-type]
        keyid=fingerprint(key.public_raw),
        created=int(now.timestamp()),
        expires=int((now + timedelta(minutes=5)).timestamp()),
        components=COMPONENTS,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
