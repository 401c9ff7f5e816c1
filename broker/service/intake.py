"""Accepting a notice: verify, check, route, encrypt, commit — then, and only then, 201.

Invariants:
- nothing is stored unless every check passed, and then everything is stored in one transaction:
  notice, key wraps, deliveries, the request nonce and the idempotency record;
- the subject and body exist only inside the ciphertext (the request body bytes, encrypted under
  a fresh data key bound to notice id, channel and policy hash); only routing metadata is clear;
- every agency error is one of the documented refusals, with nothing internal in it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from broker.audit.events import AuditEvent
from broker.config import Limits
from broker.crypto.envelope import AEAD, associated_data, seal, wrap_many
from broker.domain.notice import NoticeFacts, StoredNotice, new_notice_id
from broker.errors import (
    AuthenticationFailed,
    BadRequest,
    Forbidden,
    IdempotencyConflict,
    LiaisonError,
    NoRecipients,
    NoticeInvalid,
    SupersedesInvalid,
    TooManyRecipients,
)
from broker.input import check_json_depth, check_key, check_no_nul, rfc3339_time
from broker.logs import get_logger
from broker.policy.channel import Channel
from broker.policy.payload import Violation, payload_violations
from broker.policy.route import NotReached, Recipient, Route, check_notice, deliver_to, route
from broker.service.auth import Agency, authenticate_agency
from broker.service.notices import notice_facts_from_document
from broker.service.refusals import Refusals
from broker.service.rounds import Rounds, settle
from broker.state import BrokerState, View
from broker.store import Database, audit_repo, deliveries_repo
from broker.store import intake_repo as repo

log = get_logger("liaison.intake")
ESCROW = "broker-escrow"


# Builds the webhook and e-mail rows that announce new deliveries (see service.outbox).
Announcements = Callable[
    [View, str, Channel, list[tuple[str, str]], datetime], list[dict[str, Any]]
]


class CommitBatcher:
    """Group commit: notices that arrive together are committed in one transaction.

    One consumer takes whatever is queued (up to ``max_batch``), commits it with one statement
    per table, and answers each waiter; a batch with a conflict is retried notice by notice, so
    each waiter gets exactly the answer it would have had alone. A waiter is answered only
    after its notice is durably committed.
    """

    def __init__(self, db: Database, max_batch: int = 64) -> None:
        self.db = db
        self._rounds: Rounds[tuple[repo.NoticeWrite, asyncio.Future[None]]] = Rounds(
            "commit-batcher", self._commit_round, max_batch
        )

    async def commit(self, write: repo.NoticeWrite) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rounds.put((write, done))
        await done

    async def close(self) -> None:
        await self._rounds.close()

    async def _commit_round(
        self, batch: list[tuple[repo.NoticeWrite, asyncio.Future[None]]]
    ) -> None:
        try:
            await repo.commit_notices(self.db, [w for w, _ in batch])
        except repo.BatchConflict:
            for write, done in batch:
                await self._one(write, done)
            return
        except Exception as e:  # the store failed: every waiter hears it, none is left hanging
            settle((done for _, done in batch), e)
            return
        settle(done for _, done in batch)

    async def _one(self, write: repo.NoticeWrite, done: asyncio.Future[None]) -> None:
        try:
            await repo.commit_notice(self.db, write)
        except (
            Exception
        ) as e:  # NonceReplayed, IdempotencyRace, StoreUnavailable: the caller's to judge
            if not done.done():
                done.set_exception(e)
            return
        if not done.done():
            done.set_result(None)


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    target_uri: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    request_id: str | None = None  # recorded in every audit event this request causes
    source: str = "-"  # the peer address, for counting refusals (service/refusals.py)
    client_certificate: bytes | None = None  # SHA-256 of the verified mTLS certificate, if any


@dataclass(frozen=True)
class Accepted:
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class _Prepared:
    route: Route
    recipients: list[Recipient]
    ciphertext: bytes
    nonce: bytes
    wraps: list[tuple[str, str, bytes]]  # (recipient id, key id, wrap)
    not_reached: list[NotReached] = field(default_factory=list)


class Intake:
    def __init__(
        self,
        state: BrokerState,
        *,
        escrow_public: bytes,
        escrow_key_id: str,
        limits: Limits,
        pool: Executor,
        refusals: Refusals,
        on_committed: Callable[[str], Awaitable[None]] | None = None,
        announcements: Announcements | None = None,
    ) -> None:
        self.state = state
        self.refusals = refusals  # unauthenticated refusals: counted, summarised
        self.escrow_public = escrow_public
        self.escrow_key_id = escrow_key_id
        self.limits = limits
        self.pool = pool
        self.on_committed = on_committed  # e.g. live push; runs after the commit, never before
        self.batcher = CommitBatcher(state.engine)
        self.announcements = announcements  # webhook and e-mail rows, committed with the deliveries

    async def submit(self, request: IncomingRequest, now: datetime) -> Accepted:
        view = self.state.view
        try:
            agency = authenticate_agency(
                view.directory,
                method=request.method,
                target_uri=request.target_uri,
                headers=request.headers,
                body=request.body,
                now=now,
                max_skew=self.limits.clock_skew_seconds,
                client_certificate=request.client_certificate,
            )
        except AuthenticationFailed as e:
            await self.refusals.refused(refusal(now, "unknown", e, request), request.source, e)
            raise
        try:
            return await self._accept(view, agency, request, now)
        except repo.NonceReplayed as e:
            failure = AuthenticationFailed(detail="nonce replayed")
            await audit_repo.append_events(
                self.state.engine,
                [refusal(now, f"agency:{agency.organisation}", failure, request)],
            )
            raise failure from e
        except LiaisonError as e:
            # Refused after authentication: remember the nonce so the same request cannot be
            # replayed into a later, different answer (e.g. after a policy change).
            await self._burn_nonce(
                agency, refusal(now, f"agency:{agency.organisation}", e, request)
            )
            raise

    async def _burn_nonce(self, agency: Agency, event: AuditEvent) -> None:
        try:
            await repo.record_nonce(
                self.state.engine,
                agency.signature.keyid,
                agency.signature.nonce,
                agency.nonce_expiry(self.limits.clock_skew_seconds),
                [event],
            )
        except repo.NonceReplayed:
            await audit_repo.append_events(self.state.engine, [event])

    async def _accept(
        self, view: View, agency: Agency, request: IncomingRequest, now: datetime
    ) -> Accepted:
        document = _parse_json(request.body, self.limits.max_json_depth)
        facts = notice_facts_from_document(document, sender=agency.organisation)
        idempotency_key = _idempotency_key(request.headers, document)
        request_hash = hashlib.sha256(request.body).hexdigest()
        try:
            return await self._accept_new(
                view, agency, request, now, document, facts, idempotency_key, request_hash
            )
        except LiaisonError:
            # A retry may be refused by state its original changed (a cancel finds its target
            # cancelled): an answer already given for this key wins. A retry that would succeed
            # is caught at commit, where the key's record already exists.
            if idempotency_key:
                previous = await repo.find_idempotent(
                    self.state.engine, agency.organisation, idempotency_key
                )
                if previous is not None:
                    return self._replay(previous, request_hash)
            raise

    async def _accept_new(
        self,
        view: View,
        agency: Agency,
        request: IncomingRequest,
        now: datetime,
        document: dict[str, Any],
        facts: NoticeFacts,
        idempotency_key: str | None,
        request_hash: str,
    ) -> Accepted:
        channel = check_notice(facts, view.directory, view.policies.channels)
        earlier = await self._superseded(document, facts)
        facts = await self._with_reply_role(view, document, facts)
        decision = view.authorizer.publish(facts)
        if not decision.allowed:
            raise Forbidden(
                "this agency may not publish this notice", detail=",".join(decision.policy_ids)
            )
        cancel = bool(document.get("cancel"))
        if cancel and earlier is None:
            raise SupersedesInvalid("a cancel must name the notice it cancels in 'supersedes'")
        if not cancel or document["body"]:
            violations = payload_violations(channel, document["body"])
            if violations:
                raise NoticeInvalid(violations)
        facts = replace(facts, id=new_notice_id(now))
        notice_id = facts.id
        previous_roles = await self._previous_roles(earlier)
        prepared = await asyncio.get_running_loop().run_in_executor(
            self.pool, self._prepare, view, facts, request.body, previous_roles, now
        )
        expires = _expiry(document, now)
        response = {
            "id": notice_id,
            "channel": facts.channel,
            "recipient_count": len({r.contact for r in prepared.recipients}),
            "policy_hash": view.policies.hash,
            "status_url": f"/v1/notices/{notice_id}/status",
            "not_reached": [
                {"role": n.role, "jurisdiction": n.jurisdiction, "reason": n.reason}
                for n in prepared.not_reached
            ],
        }
        write = self._write(
            agency,
            facts,
            channel.marking.value,
            channel.retention_days,
            prepared,
            now,
            expires,
            document,
            earlier,
            response,
            idempotency_key,
            request_hash,
            decision.policy_ids,
            request.request_id,
        )
        try:
            await self.batcher.commit(write)
        except repo.IdempotencyRace:
            previous = await repo.find_idempotent(
                self.state.engine, agency.organisation, str(idempotency_key)
            )
            if previous is None:
                raise
            return self._replay(previous, request_hash)
        log.info(
            "notice_accepted",
            notice_id=notice_id,
            channel=facts.channel,
            sender=agency.organisation,
            recipients=response["recipient_count"],
            kind=write.notice["kind"],
        )
        if self.on_committed is not None:
            try:
                await self.on_committed(notice_id)
            except LiaisonError:  # the notice is committed; push is best effort, the inbox has it
                log.warning("notice_push_failed", notice_id=notice_id)
        return Accepted(response)

    def _replay(self, previous: repo.IdempotencyRecord, request_hash: str) -> Accepted:
        if previous.request_hash != request_hash:
            raise IdempotencyConflict("this idempotency key was used for a different request")
        return Accepted(previous.response, replayed=True)

    async def _superseded(
        self, document: dict[str, Any], facts: NoticeFacts
    ) -> StoredNotice | None:
        earlier_id = document.get("supersedes")
        if earlier_id is None:
            return None
        earlier = await repo.get_notice(self.state.engine, earlier_id)
        # Another agency's notice looks exactly like one that does not exist.
        if earlier is None or earlier.sender != facts.sender:
            raise SupersedesInvalid("'supersedes' does not name an earlier notice of this agency")
        if earlier.status != "active":
            raise SupersedesInvalid(f"the earlier notice is {earlier.status}")
        if earlier.channel != facts.channel:
            raise SupersedesInvalid("an update must stay on the channel of the notice it updates")
        return earlier

    async def _with_reply_role(
        self, view: View, document: dict[str, Any], facts: NoticeFacts
    ) -> NoticeFacts:
        """Check a request's ``requesting_role``; route an answer to the role that asked."""
        role_id = document.get("requesting_role")
        if role_id is not None:
            role = view.directory.roles.get(role_id)
            if role is None or role.organisation != facts.sender:
                raise NoticeInvalid(
                    [Violation("/requesting_role", "must be a role of the sending organisation")]
                )
        if "in_reply_to" not in document:
            return facts
        request = await repo.get_notice(self.state.engine, document["in_reply_to"])
        # A request this agency was not asked looks exactly like one that does not exist.
        if (
            request is None
            or facts.sender not in request.addressees
            or request.channel != facts.channel
            or request.requesting_role is None
        ):
            raise SupersedesInvalid(
                "'in_reply_to' does not name a request addressed to this agency"
            )
        return replace(facts, reply_to_role=request.requesting_role)

    async def _previous_roles(self, earlier: StoredNotice | None) -> list[str]:
        """The roles the earlier notice reached, each once, in delivery order."""
        if earlier is None:
            return []
        deliveries = await deliveries_repo.deliveries_of(self.state.engine, earlier.id)
        return list(dict.fromkeys(d.role for d in deliveries))

    def _prepare(
        self,
        view: View,
        facts: NoticeFacts,
        plaintext: bytes,
        previous_roles: list[str],
        now: datetime,
    ) -> _Prepared:
        """Route, encrypt and wrap: CPU work, run on the crypto pool.

        An update or cancel also goes to the roles the earlier notice reached (an escalation's,
        say) — through the same policy decision as any delivery, to whoever acts for each role
        now: a successor or a standing-in deputy, never a former holder."""
        routed = route(facts, view.authorizer, now)
        recipients = list(routed.recipients)
        not_reached = list(routed.not_reached)
        decided = {r.role for r in recipients} | {n.role for n in not_reached}
        more, missing = deliver_to(
            facts,
            [(role, "supersedes") for role in previous_roles if role not in decided],
            view.authorizer,
            now,
        )
        recipients += more
        not_reached += missing
        if not recipients:
            raise NoRecipients([n for n in not_reached if n.reason != "not_selected"])
        if len({r.contact for r in recipients}) > self.limits.max_recipients:
            raise TooManyRecipients(f"more than {self.limits.max_recipients} recipients")
        sealed = seal(plaintext, associated_data(facts.id, facts.channel, view.policies.hash))
        keys: dict[str, str] = {}
        for r in recipients:
            keys.setdefault(r.contact, r.key_id)
        publics = [view.directory.keys[k].public for k in keys.values()] + [self.escrow_public]
        wrapped = wrap_many(sealed.data_key, publics)
        wraps = [(c, k, w) for (c, k), w in zip(keys.items(), wrapped, strict=False)]
        wraps.append((ESCROW, self.escrow_key_id, wrapped[-1]))
        return _Prepared(
            routed,
            recipients,
            sealed.ciphertext,
            sealed.nonce,
            wraps,
            [
                n
                for n in not_reached
                if n.reason in ("vacant", "no_encryption_key", "denied_by_policy")
            ],
        )

    def _write(
        self,
        agency: Agency,
        facts: NoticeFacts,
        marking: str,
        retention_days: int,
        prepared: _Prepared,
        now: datetime,
        expires: datetime | None,
        document: dict[str, Any],
        earlier: StoredNotice | None,
        response: dict[str, Any],
        idempotency_key: str | None,
        request_hash: str,
        publish_policies: tuple[str, ...],
        request_id: str | None,
    ) -> repo.NoticeWrite:
        sig = agency.signature
        kind = "cancel" if document.get("cancel") else ("update" if earlier else "notice")
        notice = {
            "id": facts.id,
            "sender_id": agency.organisation,
            "sender_key_id": sig.keyid,
            "channel": facts.channel,
            "jurisdiction_id": facts.jurisdiction,
            "severity": facts.severity,
            "marking": marking,
            "policy_hash": prepared.route.policy_hash,
            "kind": kind,
            "supersedes_id": earlier.id if earlier else None,
            "addressees": json.dumps(list(facts.addressees)),
            "requesting_role": document.get("requesting_role"),
            "in_reply_to": document.get("in_reply_to"),
            "status": "active",
            "created_at": now,
            "expires_at": expires,
            "retain_until": now + timedelta(days=retention_days),
            "recipient_count": response["recipient_count"],
            "aead": AEAD,
            "aead_nonce": prepared.nonce,
            "ciphertext": prepared.ciphertext,
            "content_digest": sig.values.get("content-digest", ""),
            "signature_input": sig.signature_input_header,
            "signature": sig.signature_header,
            "signed_values": json.dumps(sig.values),
        }
        wraps = [
            {"notice_id": facts.id, "recipient_id": c, "key_id": k, "wrap": w}
            for c, k, w in prepared.wraps
        ]
        deliveries = [
            {
                "notice_id": facts.id,
                "contact_id": r.contact,
                "role_id": r.role,
                "jurisdiction_id": r.jurisdiction,
                "rule": r.rule,
                "policy_ids": json.dumps(list(r.policy_ids)),
                "deputy": r.deputy,
                "state": "pending",
                "created_at": now,
            }
            for r in prepared.recipients
        ]
        nonce_expires = agency.nonce_expiry(self.limits.clock_skew_seconds)
        nonce = {"key_id": sig.keyid, "nonce": sig.nonce, "expires_at": nonce_expires}
        idempotency = None
        if idempotency_key:
            idempotency = {
                "sender_id": agency.organisation,
                "key": idempotency_key,
                "request_hash": request_hash,
                "notice_id": facts.id,
                "response": json.dumps(response),
                "created_at": now,
            }
        return repo.NoticeWrite(
            notice,
            wraps,
            deliveries,
            nonce,
            idempotency,
            cancels=earlier.id if kind == "cancel" and earlier else None,
            audit=self._events(
                agency, facts, kind, prepared, now, earlier, publish_policies, request_id
            ),
            outbox=self._announcements(facts, prepared, now),
        )

    def _announcements(
        self, facts: NoticeFacts, prepared: _Prepared, now: datetime
    ) -> list[dict[str, Any]]:
        if self.announcements is None:
            return []
        view = self.state.view
        channel = view.policies.channels[facts.channel]
        return self.announcements(
            view, facts.id, channel, [(r.contact, r.role) for r in prepared.recipients], now
        )

    def _events(
        self,
        agency: Agency,
        facts: NoticeFacts,
        kind: str,
        prepared: _Prepared,
        now: datetime,
        earlier: StoredNotice | None,
        publish_policies: tuple[str, ...],
        request_id: str | None,
    ) -> list[AuditEvent]:
        """What the audit log records of an accepted notice: never its contents."""
        actor, obj, channel = f"agency:{agency.organisation}", f"notice:{facts.id}", facts.channel
        wrap_keys = {c: k for c, k, _ in prepared.wraps}
        events = [
            AuditEvent(
                at=now,
                request=request_id,
                actor=actor,
                action="notice.posted",
                object=obj,
                channel=channel,
                decision="allow",
                policies=publish_policies,
                details={
                    "jurisdiction": facts.jurisdiction,
                    "severity": facts.severity,
                    "kind": kind,
                    "supersedes": earlier.id if earlier else None,
                    "sender_key": agency.signature.keyid,
                    # Key transparency: what the agency signed, so it can spot a key it never made.
                    "content_digest": agency.signature.values.get("content-digest", ""),
                    "signature": base64.b64encode(agency.signature.signature).decode(),
                    "policy_hash": prepared.route.policy_hash,
                    "recipients": len({r.contact for r in prepared.recipients}),
                },
            )
        ]
        for r in prepared.recipients:
            events.append(
                AuditEvent(
                    at=now,
                    request=request_id,
                    actor="broker",
                    action="notice.routed",
                    object=obj,
                    channel=channel,
                    decision="allow",
                    policies=r.policy_ids,
                    details={
                        "role": r.role,
                        "contact": r.contact,
                        "jurisdiction": r.jurisdiction,
                        "rule": r.rule,
                        "deputy": r.deputy,
                        "wrap_key": wrap_keys.get(r.contact),
                    },
                )
            )
        for n in prepared.not_reached:
            events.append(
                AuditEvent(
                    at=now,
                    request=request_id,
                    actor="broker",
                    action="notice.unreachable",
                    object=obj,
                    channel=channel,
                    decision="deny" if n.reason == "denied_by_policy" else None,
                    policies=n.policy_ids,
                    outcome="failed",
                    reason=n.reason,
                    details={"role": n.role, "jurisdiction": n.jurisdiction, "rule": n.rule},
                )
            )
        events.append(
            AuditEvent(
                at=now,
                request=request_id,
                actor="broker",
                action="escrow.wrapped",
                object=obj,
                channel=channel,
                details={"key": self.escrow_key_id},
            )
        )
        if kind == "cancel" and earlier is not None:
            events.append(
                AuditEvent(
                    at=now,
                    request=request_id,
                    actor=actor,
                    action="notice.cancelled",
                    object=f"notice:{earlier.id}",
                    channel=channel,
                    details={"by": facts.id},
                )
            )
        return events


def refusal(now: datetime, actor: str, error: LiaisonError, request: IncomingRequest) -> AuditEvent:
    """The audit record of a refused post: the reason code and its detail, never the contents."""
    keyid = _claimed_keyid(request.headers)
    return AuditEvent(
        at=now,
        actor=actor,
        action="notice.refused",
        object="notice:-",
        outcome="refused",
        reason=error.code,
        details={"detail": error.detail or error.message, "keyid": keyid},
        request=request.request_id,
    )


def _claimed_keyid(headers: Mapping[str, str]) -> str | None:
    value = headers.get("signature-input", "")
    start = value.find('keyid="')
    return value[start + 7 : value.find('"', start + 7)][:128] if start >= 0 else None


def _parse_json(body: bytes, max_depth: int) -> dict[str, Any]:
    """The notice document; its depth is measured before parsing and no NUL reaches the store."""
    check_json_depth(body, max_depth)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("the body is not valid JSON") from e
    if not isinstance(document, dict):
        raise NoticeInvalid([Violation("", "a notice must be a JSON object")])
    check_no_nul(document)
    return document


def _idempotency_key(headers: Mapping[str, str], document: dict[str, Any]) -> str | None:
    """The header's key (checked here: it never passed the schema), else the body's."""
    if "idempotency-key" in headers:
        return check_key(headers["idempotency-key"])
    key = document.get("idempotency_key")
    return key if isinstance(key, str) else None


def _expiry(document: dict[str, Any], now: datetime) -> datetime | None:
    if "expires_at" not in document:
        return None
    expires = rfc3339_time(document["expires_at"])
    if expires is None or expires <= now:
        raise NoticeInvalid(
            [Violation("/expires_at", "must be a future RFC 3339 date-time with a timezone")]
        )
    return expires
