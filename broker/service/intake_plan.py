"""The intake decision, pure: from the request's document, the view in force and what the store
held, everything an intake decides — or the refusal, with the same precedence as always.

No I/O, no clock, no randomness: the view, the context read from the store, ``now`` and the new
notice id are arguments, so every rule is a unit test (tests/unit/test_intake_plan.py).

Order of the checks (the first that fails is the answer):
1. ``read_draft``: the body is JSON within the depth limit, without NUL; the envelope schema;
   the Idempotency-Key (before anything is read from the store);
2. ``plan``: channel and jurisdiction exist; ``supersedes`` names an active notice of this
   agency on the same channel; ``requesting_role`` is the sender's; ``in_reply_to`` names a
   request addressed to this agency; Cedar permits ``publish``; a cancel names what it
   cancels; the payload schema; routing reaches someone, and no more than the limit; the
   expiry is in the future.
The idempotency outcome is ``replayed``: a refused retry whose key already has an answer gets
that answer, or 409 when the key was used for another request. The key's record is read only
when a refusal (or the commit's uniqueness check) makes it matter, so a fresh notice with a key
costs no extra store read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from broker.cap.mapping import CAP_MEDIA_TYPE, CapError, cap_document
from broker.domain.notice import NoticeFacts, StoredNotice
from broker.errors import (
    BadRequest,
    Forbidden,
    IdempotencyConflict,
    LiaisonError,
    NoRecipients,
    NoticeInvalid,
    SupersedesInvalid,
    TooManyRecipients,
)
from broker.input import check_json_depth, check_key, check_no_nul, parse_json, rfc3339_time
from broker.policy.channel import Channel
from broker.policy.payload import Violation, payload_violations
from broker.policy.route import (
    NotReached,
    Recipient,
    candidate_roles,
    check_notice,
    deliver_to,
    route,
)
from broker.service.notices import notice_facts_from_document

if TYPE_CHECKING:  # the view's type only: this module never touches the state or the store
    from broker.state import View

REPORTED = ("vacant", "no_encryption_key", "denied_by_policy")  # not_reached told to the sender


@dataclass(frozen=True)
class Draft:
    """A posted notice as read from its request, before any decision."""

    document: dict[str, Any]
    facts: NoticeFacts  # routing metadata, id "draft"
    idempotency_key: str | None
    request_hash: str  # SHA-256 of the body: a retry with the key must be the same request


@dataclass(frozen=True)
class Previous:
    """The answer already given for this idempotency key."""

    request_hash: str
    response: dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What the store held for this decision (``intake_repo.intake_reads``)."""

    earlier: StoredNotice | None = None
    earlier_roles: tuple[str, ...] = ()
    request: StoredNotice | None = None


@dataclass(frozen=True)
class Plan:
    """An accepted notice, decided: what to encrypt, whom for, and what to answer."""

    facts: NoticeFacts  # with its id (and the role it answers)
    channel: Channel
    kind: str  # notice | update | cancel
    supersedes: str | None
    recipients: tuple[Recipient, ...]
    not_reached: tuple[NotReached, ...]  # the roles reported to the sender and the audit log
    policy_hash: str
    publish_policies: tuple[str, ...]
    expires: datetime | None
    response: dict[str, Any]  # the 201 body (and the idempotency record's answer)

    @property
    def contacts(self) -> dict[str, str]:
        """Each recipient contact once, in routing order, with the key its wrap is for."""
        keys: dict[str, str] = {}
        for r in self.recipients:
            keys.setdefault(r.contact, r.key_id)
        return keys


@dataclass(frozen=True)
class Replay:
    """The answer already given for this key, to be given again."""

    response: dict[str, Any]


def read_draft(
    body: bytes,
    headers: Mapping[str, str],
    sender: str,
    max_depth: int,
    *,
    target_uri: str = "",
    covered: tuple[str, ...] = (),
) -> Draft:
    """The document, its envelope checked, and its idempotency key: nothing read yet.

    A body posted as ``application/cap+xml`` is a CAP 1.2 alert: its document is what the
    alert maps to (``broker.cap``), the same mapping the recipient's client applies to the
    decrypted bytes; the bytes themselves, as signed, are what gets encrypted."""
    if media_type(headers) == CAP_MEDIA_TYPE:
        document = _cap_document(body, target_uri, covered)
    else:
        document = _parse_json(body, max_depth)
    facts = notice_facts_from_document(document, sender=sender)
    return Draft(
        document, facts, _idempotency_key(headers, document), hashlib.sha256(body).hexdigest()
    )


def plan(
    view: View,
    draft: Draft,
    context: Context,
    now: datetime,
    *,
    notice_id: str,
    max_recipients: int,
) -> Plan:
    """The decision on ``draft``: the accepted notice's plan, or the first refusal raised."""
    return _decide(view, draft, context, now, notice_id, max_recipients)


def replayed(previous: Previous, request_hash: str) -> Replay:
    """The earlier answer for the same request; ``IdempotencyConflict`` for another one."""
    if previous.request_hash != request_hash:
        raise IdempotencyConflict("this idempotency key was used for a different request")
    return Replay(previous.response)


def _why_not(facts: NoticeFacts, policy_ids: tuple[str, ...]) -> str:
    if policy_ids:
        return f"forbidden by policy {', '.join(policy_ids)}"
    return (
        f"no policy permits {facts.sender} to publish on {facts.channel} for {facts.jurisdiction}"
    )


def _why_not_data(facts: NoticeFacts, policy_ids: tuple[str, ...]) -> dict[str, object]:
    """``_why_not`` as data, which the CLI says in its reader's language (broker/cli/refusals.py)."""
    if policy_ids:
        return {"rule": "forbidden_by_policy", "policies": list(policy_ids)}
    return {
        "rule": "no_policy_permits",
        "sender": facts.sender,
        "channel": facts.channel,
        "jurisdiction": facts.jurisdiction,
    }


def _decide(
    view: View,
    draft: Draft,
    context: Context,
    now: datetime,
    notice_id: str,
    max_recipients: int,
) -> Plan:
    document, facts = draft.document, draft.facts
    channel = check_notice(facts, view.directory, view.policies.channels)
    earlier = _superseded(document, facts, context.earlier)
    facts = replace(_with_reply_role(view, document, facts, context.request), id=notice_id)
    previous_roles = context.earlier_roles if earlier is not None else ()
    # Publish and every receive this intake will ask, in one Cedar batch (or from the cache).
    view.authorizer.prepare(
        facts, [*candidate_roles(facts, channel, view.directory), *previous_roles]
    )
    decision = view.authorizer.publish(facts)
    if not decision.allowed:
        raise Forbidden(
            "this agency may not publish this notice",
            detail=",".join(decision.policy_ids),
            reason=_why_not(facts, decision.policy_ids),
            why=_why_not_data(facts, decision.policy_ids),
        )
    cancel = bool(document.get("cancel"))
    if cancel and earlier is None:
        raise SupersedesInvalid("a cancel must name the notice it cancels in 'supersedes'")
    if not cancel or document["body"]:
        violations = payload_violations(channel, document["body"])
        if violations:
            raise NoticeInvalid(violations)
    policy_hash, recipients, not_reached = _recipients(view, facts, previous_roles, now)
    if len({r.contact for r in recipients}) > max_recipients:
        raise TooManyRecipients(f"more than {max_recipients} recipients")
    kind = "cancel" if cancel else ("update" if earlier else "notice")
    return _planned(
        view,
        facts,
        channel,
        kind,
        earlier.id if earlier else None,
        (policy_hash, recipients, not_reached),
        decision.policy_ids,
        _expiry(document, now),
    )


def _planned(
    view: View,
    facts: NoticeFacts,
    channel: Channel,
    kind: str,
    supersedes: str | None,
    routed: tuple[str, list[Recipient], list[NotReached]],
    publish_policies: tuple[str, ...],
    expires: datetime | None,
) -> Plan:
    policy_hash, recipients, not_reached = routed
    reported = tuple(n for n in not_reached if n.reason in REPORTED)
    response = {
        "id": facts.id,
        "channel": facts.channel,
        "recipient_count": len({r.contact for r in recipients}),
        "policy_hash": view.policies.hash,
        "status_url": f"/v1/notices/{facts.id}/status",
        "not_reached": [
            {"role": n.role, "jurisdiction": n.jurisdiction, "reason": n.reason} for n in reported
        ],
    }
    return Plan(
        facts,
        channel,
        kind,
        supersedes,
        tuple(recipients),
        reported,
        policy_hash,
        publish_policies,
        expires,
        response,
    )


def _recipients(
    view: View, facts: NoticeFacts, previous_roles: tuple[str, ...], now: datetime
) -> tuple[str, list[Recipient], list[NotReached]]:
    """Route; an update or cancel also goes to the roles the earlier notice reached (an
    escalation's, say) — through the same policy decision as any delivery, to whoever acts for
    each role now: a successor or a standing-in deputy, never a former holder."""
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
    return routed.policy_hash, recipients, not_reached


def _superseded(
    document: dict[str, Any], facts: NoticeFacts, earlier: StoredNotice | None
) -> StoredNotice | None:
    if document.get("supersedes") is None:
        return None
    # Another agency's notice looks exactly like one that does not exist.
    if earlier is None or earlier.sender != facts.sender:
        raise SupersedesInvalid("'supersedes' does not name an earlier notice of this agency")
    if earlier.status != "active":
        raise SupersedesInvalid(f"the earlier notice is {earlier.status}")
    if earlier.channel != facts.channel:
        raise SupersedesInvalid("an update must stay on the channel of the notice it updates")
    if earlier.exercise != facts.exercise:
        # An exercise never turns real (or a real notice into an exercise) by an update.
        raise SupersedesInvalid(
            "an update must keep the exercise or test marking of the notice it updates"
        )
    return earlier


def check_requesting_role(view: View, document: dict[str, Any], sender: str) -> None:
    """A request's ``requesting_role`` is a role of the sending organisation: its answer will
    reach that role (here, or across a border)."""
    role_id = document.get("requesting_role")
    if role_id is not None:
        role = view.directory.roles.get(role_id)
        if role is None or role.organisation != sender:
            raise NoticeInvalid(
                [Violation("/requesting_role", "must be a role of the sending organisation")]
            )


def _with_reply_role(
    view: View, document: dict[str, Any], facts: NoticeFacts, request: StoredNotice | None
) -> NoticeFacts:
    """Check a request's ``requesting_role``; route an answer to the role that asked."""
    check_requesting_role(view, document, facts.sender)
    if "in_reply_to" not in document:
        return facts
    # A request this agency was not asked looks exactly like one that does not exist. The role
    # that asked must be a role of the requesting organisation in this directory: a request
    # received from a peer names the asking role as the peer's agency wrote it, and a peer that
    # skipped its own check must not pick a local role for the answer this way (an answer to a
    # received request crosses back, ``federation/forward.py``).
    asking = None if request is None else view.directory.roles.get(str(request.requesting_role))
    if (
        request is None
        or facts.sender not in request.addressees
        or request.channel != facts.channel
        or request.requesting_role is None
        or asking is None
        or asking.organisation != request.sender
    ):
        raise SupersedesInvalid("'in_reply_to' does not name a request addressed to this agency")
    return replace(facts, reply_to_role=request.requesting_role)


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _cap_document(body: bytes, target_uri: str, covered: tuple[str, ...]) -> dict[str, Any]:
    try:
        document = cap_document(body, target_uri, covered)
    except CapError as e:
        raise NoticeInvalid([Violation("", str(e))], "the CAP alert cannot be posted") from e
    check_no_nul(document)
    return document


def _parse_json(body: bytes, max_depth: int) -> dict[str, Any]:
    """The notice document; its depth is measured before parsing and no NUL reaches the store."""
    check_json_depth(body, max_depth)
    try:
        document = parse_json(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("the body is not valid JSON") from e
    if not isinstance(document, dict):
        raise NoticeInvalid([Violation("", "a notice must be a JSON object")])
    check_no_nul(document)
    return document


def unread_key(body: bytes, headers: Mapping[str, str], max_depth: int) -> tuple[str | None, str]:
    """The idempotency key and body hash of a request whose draft could not be read.

    A key already bound to another request answers 409 whatever is wrong with this body, so the
    key is found without the schema: the header's, else the body's when the body is JSON."""
    request_hash = hashlib.sha256(body).hexdigest()
    try:
        if "idempotency-key" in headers:
            return check_key(headers["idempotency-key"]), request_hash
        key = _parse_json(body, max_depth).get("idempotency_key")
    except LiaisonError:
        return None, request_hash
    return (key if isinstance(key, str) else None), request_hash


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
