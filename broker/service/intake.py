"""Accepting a notice: verify, load, decide, encrypt, commit — then, and only then, 201.

The use case in three steps: **load** (one store read of what the decision needs, and none when
it needs nothing), **decide** (``intake_plan.plan``, pure), then **encrypt** on the crypto pool
and **commit** once (``group_commit``). Row shapes live in ``store.rows``, the audit vocabulary
in ``audit.notice_events``.

Invariants:
- nothing is stored unless every check passed, and then everything is stored in one transaction:
  notice, key wraps, deliveries, the request nonce and the idempotency record;
- the subject and body exist only inside the ciphertext (the request body bytes, encrypted under
  a fresh data key bound to notice id, channel and policy hash); only routing metadata is clear;
- one view per request: the decision, the encryption and the announcements all use it;
- a request refused after authentication burns its nonce, so it cannot be replayed into a
  later, different answer; a retry whose key already has an answer gets that answer;
- every agency error is one of the documented refusals, with nothing internal in it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.audit.notice_events import refusal
from broker.cap.mapping import CAP_MEDIA_TYPE
from broker.config import Limits
from broker.domain.notice import new_notice_id
from broker.errors import AuthenticationFailed, CommitInDoubt, LiaisonError, StoreUnavailable
from broker.logs import get_logger
from broker.policy.channel import Channel
from broker.service import release
from broker.service.auth import Agency, authenticate_agency
from broker.service.group_commit import CommitBatcher
from broker.service.intake_plan import (
    Context,
    Draft,
    Plan,
    Previous,
    Replay,
    media_type,
    plan,
    read_draft,
    unread_key,
)
from broker.service.intake_plan import replayed as replay_of
from broker.service.intake_write import ESCROW, Sealed, notice_write, seal_for
from broker.service.refusals import Refusals
from broker.state import BrokerState, View
from broker.store import audit_repo
from broker.store import intake_repo as repo

__all__ = ["ESCROW", "Accepted", "Announcements", "IncomingRequest", "Intake"]

log = get_logger("liaison.intake")


# The federation hook (``broker/federation/forward.py``): a notice for another country is
# refused with the agreement's reason or queued for its peer, and answered here; None: intake
# goes on as for any notice.
CrossBorder = Callable[
    ["View", "Agency", "IncomingRequest", Draft, datetime], Awaitable["Accepted | None"]
]

# Builds the webhook and e-mail rows that announce new deliveries (see service.outbox).
Announcements = Callable[
    [View, str, Channel, list[tuple[str, str]], datetime], list[dict[str, Any]]
]


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
        cross_border: CrossBorder | None = None,
    ) -> None:
        self.state = state
        self.cross_border = cross_border
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
            await self.refusals.refused(
                self._refusal(now, "unknown", e, request), request.source, e
            )
            raise
        actor = f"agency:{agency.organisation}"
        try:
            return await self._accept(view, agency, request, now)
        except repo.NonceReplayed as e:
            failure = AuthenticationFailed(detail="nonce replayed")
            await audit_repo.append_events(
                self.state.engine, [self._refusal(now, actor, failure, request)]
            )
            raise failure from e
        except CommitInDoubt:
            # Not a refusal: the nonce is stored with the notice if it committed, and nothing
            # may say "refused" of a notice that may be stored. Its retry settles it.
            raise
        except LiaisonError as e:
            # Refused after authentication: remember the nonce so the same request cannot be
            # replayed into a later, different answer (e.g. after a policy change).
            await self._burn_nonce(agency, self._refusal(now, actor, e, request))
            raise

    @staticmethod
    def _refusal(
        now: datetime, actor: str, error: LiaisonError, request: IncomingRequest
    ) -> AuditEvent:
        return refusal(now, actor, error, request.headers, request.request_id)

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
        # Reading a CAP alert runs the CAP 1.2 schema and XML-DSig checks (lxml, signxml):
        # CPU work on a body up to the size limit, so it runs on the pool, not the event loop.
        read = functools.partial(
            read_draft,
            request.body,
            request.headers,
            agency.organisation,
            self.limits.max_json_depth,
            target_uri=request.target_uri,  # a CAP alert's query: what it supersedes
            covered=agency.signature.components,
        )
        try:
            # A JSON body is read inline: a pool hop would cost more than its reading.
            draft = (
                await asyncio.get_running_loop().run_in_executor(self.pool, read)
                if media_type(request.headers) == CAP_MEDIA_TYPE
                else read()
            )
        except LiaisonError as e:
            return await self._answered_unread(agency, request, e)
        if self.cross_border is not None:
            forwarded = await self.cross_border(view, agency, request, draft, now)
            if forwarded is not None:
                return forwarded
        # A retry may be refused by state its original changed (a cancel finds its target
        # cancelled): an answer already given for this key wins. A retry that would succeed
        # is caught at commit, where the key's record already exists. A commit in doubt (the
        # connection lost during COMMIT) is resolved the same way when the store answers: its
        # own record, found, is the 201 it earned; not found or unreadable, it stays in doubt.
        try:
            context = await self._load(draft)
            planned, sealed = await asyncio.get_running_loop().run_in_executor(
                self.pool, self._decide_and_seal, view, draft, context, request.body, now
            )
            return await self._commit(view, agency, request, draft, now, planned, sealed)
        except LiaisonError as e:
            with _still_in_doubt(e):
                answered = await self._answered(agency, draft.idempotency_key, draft.request_hash)
            if answered is None:
                raise
            if isinstance(e, CommitInDoubt):  # it committed: this is its first answer, not a replay
                log.info("commit_resolved", notice_id=answered.body.get("id"), by="idempotency")
                return replace(answered, replayed=False)
            return answered

    async def _load(self, draft: Draft) -> Context:
        """Step 1: one store read of what the decision needs; none when it needs nothing.

        The idempotency key's record is not part of it: a fresh key (the common case) would pay
        a read for nothing. It is read when a refusal or the commit's uniqueness check asks."""
        document = draft.document
        if document.get("supersedes") is None and "in_reply_to" not in document:
            return Context()  # the key's record, if any, is read only when it matters
        reads = await repo.intake_reads(
            self.state.engine,
            supersedes=document.get("supersedes"),
            in_reply_to=document.get("in_reply_to"),
        )
        return Context(reads.earlier, reads.earlier_roles, reads.request)

    def _decide_and_seal(
        self, view: View, draft: Draft, context: Context, body: bytes, now: datetime
    ) -> tuple[Plan, Sealed]:
        """Steps 2 and 3, CPU work on the crypto pool: the pure decision, then encryption."""
        planned = plan(
            view,
            draft,
            context,
            now,
            notice_id=new_notice_id(now),
            max_recipients=self.limits.max_recipients,
        )
        sealed = seal_for(planned, body, view, self.escrow_public, self.escrow_key_id)
        if release.required(planned.channel):  # two-person release: the escrow's wrap alone
            planned = replace(planned, response={**planned.response, "release": "waiting"})
            sealed = release.escrow_only(sealed)
        return planned, sealed

    async def _answered(
        self, agency: Agency, key: str | None, request_hash: str
    ) -> Accepted | None:
        """The answer already given for the request's key, if any (read from the store)."""
        if not key:
            return None
        previous = await repo.find_idempotent(self.state.engine, agency.organisation, key)
        if previous is None:
            return None
        return Accepted(self._replay(previous, request_hash).response, replayed=True)

    async def _answered_unread(
        self, agency: Agency, request: IncomingRequest, error: LiaisonError
    ) -> Accepted:
        """A key already bound to another body answers 409 before this body's own faults (and
        the same body, unreadable now, its first answer); otherwise ``error``."""
        key, request_hash = unread_key(request.body, request.headers, self.limits.max_json_depth)
        answered = await self._answered(agency, key, request_hash)
        if answered is None:
            raise error
        return answered

    @staticmethod
    def _replay(previous: repo.IdempotencyRecord, request_hash: str) -> Replay:
        return replay_of(Previous(previous.request_hash, previous.response), request_hash)

    async def _commit(
        self,
        view: View,
        agency: Agency,
        request: IncomingRequest,
        draft: Draft,
        now: datetime,
        planned: Plan,
        sealed: Sealed,
    ) -> Accepted:
        """Step 4: commit once (grouped with concurrent notices); then log and push."""
        held = release.required(planned.channel)
        outbox = [] if held else self._announcements(view, planned, now)
        write = notice_write(
            agency, draft, planned, sealed, now, self.limits, request.request_id, outbox
        )
        if held:
            write = release.hold(write, planned, now)
        try:
            await self.batcher.commit(write)
        except repo.IdempotencyRace:
            previous = await repo.find_idempotent(
                self.state.engine, agency.organisation, str(draft.idempotency_key)
            )
            if previous is None:
                raise
            return Accepted(self._replay(previous, draft.request_hash).response, replayed=True)
        notice_id = planned.facts.id
        log.info(
            "notice_accepted",
            notice_id=notice_id,
            channel=planned.facts.channel,
            sender=agency.organisation,
            recipients=planned.response["recipient_count"],
            kind=planned.kind,
        )
        if self.on_committed is not None and not held:
            try:
                await self.on_committed(notice_id)
            except LiaisonError:  # the notice is committed; push is best effort, the inbox has it
                log.warning("notice_push_failed", notice_id=notice_id)
        return Accepted(planned.response)

    def _announcements(self, view: View, planned: Plan, now: datetime) -> list[dict[str, Any]]:
        """Webhook and e-mail rows for the deliveries, built from the request's own view."""
        if self.announcements is None:
            return []
        return self.announcements(
            view,
            planned.facts.id,
            planned.channel,
            [(r.contact, r.role) for r in planned.recipients],
            now,
        )


@contextmanager
def _still_in_doubt(error: LiaisonError) -> Iterator[None]:
    """Around the read that settles ``error``: when ``error`` is a commit in doubt and the store
    is still unreachable, the answer stays "in doubt", never a plain outage (which would tell
    the client that nothing was stored)."""
    try:
        yield
    except StoreUnavailable as e:
        if isinstance(error, CommitInDoubt):  # a new one: the batch's waiters share ``error``
            raise CommitInDoubt(error.message, detail=error.detail) from e
        raise
