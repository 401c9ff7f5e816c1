"""Two-person release: a notice on a channel with ``release:`` waits for a second officer.

At intake (``hold``) the notice is stored as usual but with status ``held``: its data key is
wrapped for the escrow only, no delivery, e-mail, webhook or push exists, and the deliveries
routing chose wait in the ``notice_release`` row. A second officer of the same agency — a
DIFFERENT signing key bound to the same organisation in the directory — approves with a signed
request (RFC 9421) whose body names the notice's content digest (``POST /v1/notices/{id}/approve``);
the broker then unwraps the data key from the escrow wrap, wraps it for each recipient's current
key, and writes the deliveries and announcements in one transaction with the audit events.
``/refuse`` (with a reason) and the deadline (``expire``) close it without routing.

Invariants:
- until approval nobody but the escrow holds a wrap, and no row announces the notice;
- the poster's own key, another agency's key and an approval over another digest are refused
  (403, audited as ``notice.release_refused``); each decision is taken once (a held notice
  moves out of ``waiting`` exactly once, whichever request or worker comes first);
- approval, refusal and timeout are audit events and appear in ``status`` (``release``).
Time is passed in.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from broker.audit.events import AuditEvent
from broker.crypto.envelope import unwrap, wrap
from broker.domain.writes import NewDelivery
from broker.errors import BadRequest, Forbidden, LiaisonError, NotFound
from broker.input import parse_json
from broker.logs import get_logger
from broker.policy.channel import Channel
from broker.policy.route import Recipient, deliver_to
from broker.service.auth import Agency, authenticate_agency
from broker.service.intake_plan import Plan
from broker.service.intake_write import ESCROW, Sealed
from broker.state import BrokerState, View
from broker.store import Database, intake_repo, release_repo
from broker.store.intake_repo import NoticeWrite
from broker.store.rows import delivery_rows

log = get_logger("liaison.release")

Announcements = Callable[
    [View, str, Channel, list[tuple[str, str]], datetime], list[dict[str, Any]]
]


def required(channel: Channel) -> bool:
    return channel.release_hours is not None


def escrow_only(sealed: Sealed) -> Sealed:
    """The sealed notice with its escrow wrap alone: nobody else can read it yet."""
    return replace(sealed, wraps=[w for w in sealed.wraps if w.recipient == ESCROW])


def hold(write: NoticeWrite, planned: Plan, now: datetime) -> NoticeWrite:
    """The notice's write, held: status ``held``, no deliveries or announcements, the planned
    deliveries kept for the approval, and ``notice.held`` in place of ``notice.routed``."""
    hours = planned.channel.release_hours or 4
    deadline = now + timedelta(hours=hours)
    deliveries = [_planned_row(row) for row in write.deliveries]
    audit = [e for e in write.audit if e.action != "notice.routed"]
    held = AuditEvent(
        at=now,
        actor="broker",
        action="notice.held",
        object=f"notice:{planned.facts.id}",
        channel=planned.facts.channel,
        details={"approvals": 2, "deadline": _time(deadline), "recipients": len(deliveries)},
    )
    return replace(
        write,
        notice={**write.notice, "status": "held"},
        deliveries=[],
        outbox=(),
        audit=[*audit, held],
        release={
            "notice_id": planned.facts.id,
            "state": "waiting",
            "deadline": deadline,
            "deliveries": json.dumps(deliveries),
        },
    )


def _planned_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: row[k]
        for k in ("contact_id", "role_id", "jurisdiction_id", "rule", "policy_ids", "deputy")
    }


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Decision:
    """A signed approve or refuse request, as the HTTP layer read it."""

    method: str
    target_uri: str
    headers: Mapping[str, str]
    body: bytes
    client_certificate: bytes | None = None
    request_id: str | None = None


class Release:
    """Approves, refuses and times out held notices."""

    def __init__(
        self,
        state: BrokerState,
        escrow_private: bytes,
        max_skew: int,
        announcements: Announcements | None = None,
        on_released: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.on_released = on_released  # live push, after the commit (as intake's)
        self.state = state
        self.escrow_private = escrow_private
        self.max_skew = max_skew
        self.announcements = announcements

    async def decide(
        self, notice_id: str, request: Decision, *, approve: bool, now: datetime
    ) -> dict[str, Any]:
        """POST /v1/notices/{id}/approve or /refuse: check the second officer, then act."""
        view = self.state.view
        agency = authenticate_agency(
            view.directory,
            method=request.method,
            target_uri=request.target_uri,
            headers=request.headers,
            body=request.body,
            now=now,
            max_skew=self.max_skew,
            client_certificate=request.client_certificate,
        )
        document = _document(request.body)
        held = await release_repo.held(self.state.engine, notice_id)
        try:
            _check(held, agency, document)
        except (Forbidden, NotFound) as e:
            await release_repo.refused_attempt(
                self.state.engine,
                _attempt(agency, notice_id, e, now, request.request_id),
                agency.signature.keyid,
                agency.signature.nonce,
                agency.nonce_expiry(self.max_skew),
            )
            raise
        assert held is not None
        nonce = (
            agency.signature.keyid,
            agency.signature.nonce,
            agency.nonce_expiry(self.max_skew),
        )
        if approve:
            return await self._approve(view, held, agency, now, request.request_id, nonce)
        reason = str(document.get("reason", ""))[:500]
        event = _decided(held, agency, "notice.release_refused_by_officer", now, request.request_id)
        event = replace(event, reason="refused", details={**event.details, "why": reason})
        closed = await release_repo.close(
            self.state.engine,
            held.notice_id,
            "refused",
            agency.signature.keyid,
            reason,
            now,
            [event],
            nonce,
        )
        if not closed:
            raise Forbidden("this notice is no longer waiting for release", detail="decided")
        return {"id": held.notice_id, "release": "refused", "by": agency.signature.keyid}

    async def _approve(
        self,
        view: View,
        held: release_repo.Held,
        agency: Agency,
        now: datetime,
        request_id: str | None,
        nonce: tuple[str, str, datetime],
    ) -> dict[str, Any]:
        data_key = unwrap(held.escrow_wrap, self.escrow_private)
        stored = await intake_repo.get_notice(self.state.engine, held.notice_id)
        if stored is None:
            raise NotFound("no such notice", detail="not_found")
        # Who receives it is decided now, as for an update or an escalation (one function for
        # every delivery path): the roles planned at posting, through whoever acts for them at
        # approval under the policy in force — never a holder who left while it waited.
        planned = list(dict.fromkeys((row["role_id"], row["rule"]) for row in held.deliveries))
        found, not_reached = deliver_to(stored.facts(), planned, view.authorizer, now)
        wraps: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        for r in found:
            key = view.directory.encryption_key(r.contact, now)
            if key is None:  # deliver_to reaches only contacts with a usable key
                continue
            deliveries.append(_delivery(held.notice_id, r, now))
            if all(w["recipient_id"] != r.contact for w in wraps):
                wraps.append(
                    {
                        "notice_id": held.notice_id,
                        "recipient_id": r.contact,
                        "key_id": key.id,
                        "wrap": wrap(data_key, key.public),
                    }
                )
        channel = view.policies.channels[held.channel]
        outbox = []
        if self.announcements is not None and deliveries:
            outbox = self.announcements(
                view,
                held.notice_id,
                channel,
                [(d["contact_id"], d["role_id"]) for d in deliveries],
                now,
            )
        approved = _decided(held, agency, "notice.approved", now, request_id)
        events = [
            AuditEvent(
                at=now,
                actor="broker",
                action="escrow.used",
                object=f"notice:{held.notice_id}",
                details={"purpose": "notice.released", "recipients": len(wraps)},
            ),
            approved,
            AuditEvent(
                at=now,
                actor="broker",
                action="notice.routed",
                object=f"notice:{held.notice_id}",
                channel=held.channel,
                decision="allow",
                details={
                    "recipients": [_routed(d, wraps) for d in deliveries],
                    "not_reached": [
                        {"role": n.role, "jurisdiction": n.jurisdiction, "reason": n.reason}
                        for n in not_reached
                    ],
                    "released_by": agency.signature.keyid,
                    "escrow_key": held.escrow_key_id,
                },
            ),
        ]
        released = await release_repo.release(
            self.state.engine,
            held.notice_id,
            agency.signature.keyid,
            now,
            wraps,
            deliveries,
            outbox,
            events,
            nonce,
        )
        if not released:  # another officer, or the timeout, decided first
            raise Forbidden("this notice is no longer waiting for release", detail="decided")
        log.info("notice_released", notice_id=held.notice_id, by=agency.signature.keyid)
        if self.on_released is not None:
            try:
                await self.on_released(held.notice_id)
            except LiaisonError:  # committed; push is best effort, the inbox has it
                log.warning("notice_push_failed", notice_id=held.notice_id)
        return {"id": held.notice_id, "release": "approved", "by": agency.signature.keyid}

    async def expire(self, now: datetime) -> int:
        """Held notices past their deadline: refused by timeout, each audited."""
        done = 0
        for held in await release_repo.overdue(self.state.engine, now):
            event = AuditEvent(
                at=now,
                actor="broker",
                action="notice.release_timed_out",
                object=f"notice:{held.notice_id}",
                channel=held.channel,
                outcome="refused",
                reason="timed_out",
            )
            if await release_repo.close(
                self.state.engine, held.notice_id, "timed_out", None, "timeout", now, [event]
            ):
                done += 1
        return done


def _delivery(notice_id: str, r: Recipient, now: datetime) -> dict[str, Any]:
    """A delivery row for a recipient decided at approval, as intake writes one."""
    new = NewDelivery(r.contact, r.role, r.jurisdiction, r.rule, r.policy_ids, r.deputy)
    return delivery_rows(notice_id, [new], now)[0]


def _routed(delivery: Mapping[str, Any], wraps: list[dict[str, Any]]) -> dict[str, Any]:
    """One recipient as intake's ``notice.routed`` lists it, with the key its wrap is for."""
    keys = {w["recipient_id"]: w["key_id"] for w in wraps}
    return {
        "contact": delivery["contact_id"],
        "role": delivery["role_id"],
        "jurisdiction": delivery["jurisdiction_id"],
        "rule": delivery["rule"],
        "deputy": delivery["deputy"],
        "policies": json.loads(delivery["policy_ids"]),
        "wrap_key": keys.get(delivery["contact_id"]),
    }


def _document(body: bytes) -> dict[str, Any]:
    try:
        document = parse_json(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("the body is not valid JSON") from e
    if not isinstance(document, dict) or not isinstance(document.get("content_digest"), str):
        raise BadRequest("the body must be a JSON object naming the notice's content_digest")
    return document


def _check(held: release_repo.Held | None, agency: Agency, document: Mapping[str, Any]) -> None:
    """The second-officer rule. Another agency's notice looks like one that does not exist."""
    if held is None or held.sender != agency.organisation:
        raise NotFound("no such notice waiting for release")
    if held.state != "waiting":
        raise Forbidden("this notice is no longer waiting for release", detail=held.state)
    if agency.signature.keyid == held.sender_key_id:
        raise Forbidden("the officer who posted a notice cannot release it", detail="same_officer")
    if document["content_digest"] != held.content_digest:
        raise Forbidden(
            "the approval names another content digest than the notice's", detail="digest"
        )


def _decided(
    held: release_repo.Held, agency: Agency, action: str, now: datetime, request_id: str | None
) -> AuditEvent:
    return AuditEvent(
        at=now,
        actor=f"agency:{agency.organisation}",
        action=action,
        object=f"notice:{held.notice_id}",
        channel=held.channel,
        request=request_id,
        details={
            "officer_key": agency.signature.keyid,
            "poster_key": held.sender_key_id,
            "content_digest": held.content_digest,
            # What the second officer signed: an auditor re-verifies it against the directory.
            "signature_input": agency.signature.signature_input_header,
            "signature": base64.b64encode(agency.signature.signature).decode(),
        },
    )


def _attempt(
    agency: Agency,
    notice_id: str,
    error: Forbidden | NotFound,
    now: datetime,
    request_id: str | None,
) -> AuditEvent:
    return AuditEvent(
        at=now,
        actor=f"agency:{agency.organisation}",
        action="notice.release_refused",
        object=f"notice:{notice_id[:40]}",
        outcome="refused",
        reason=error.detail or error.code,
        request=request_id,
        details={"officer_key": agency.signature.keyid},
    )


async def release_status(db: Database, notice_id: str) -> dict[str, Any] | None:
    """What ``status`` shows of a notice's release, or None when the channel needs none."""
    row = await release_repo.state_of(db, notice_id)
    if row is None:
        return None
    return {
        "state": row["state"],
        "deadline": _time(row["deadline"]),
        "decided_by": row["decided_by"],
        "decided_at": _time(row["decided_at"]) if row["decided_at"] else None,
        "reason": row["reason"],
    }
