"""Encrypting a decided notice and composing everything its commit writes.

``seal_for`` is CPU work for the crypto pool: the request body is sealed under a fresh data key
bound to notice id, channel and policy hash, and the key is wrapped for each recipient contact
(once, in routing order) and for the escrow. ``notice_write`` turns the plan, the sealed
contents and the sender's signature evidence into plain domain values and the audit events, and
hands them to the store's row shapes (``store.rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from broker.audit.notice_events import Posting, accepted
from broker.config import Limits
from broker.crypto.envelope import AEAD, associated_data, seal, wrap_many
from broker.domain.writes import IdempotentAnswer, KeyWrap, NewDelivery, NewNotice, NonceUse
from broker.service.auth import Agency
from broker.service.intake_plan import Draft, Plan
from broker.store import intake_repo as repo
from broker.store import rows

if TYPE_CHECKING:
    from broker.state import View

ESCROW = "broker-escrow"  # the wrap's recipient id for the broker's escrow key


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    wraps: list[KeyWrap]  # each recipient contact once, in routing order, then the escrow


def seal_for(
    planned: Plan, plaintext: bytes, view: View, escrow_public: bytes, escrow_key_id: str
) -> Sealed:
    """Encrypt the notice and wrap its data key for every recipient and the escrow."""
    facts = planned.facts
    sealed = seal(plaintext, associated_data(facts.id, facts.channel, view.policies.hash))
    keys = planned.contacts
    publics = [view.directory.keys[k].public for k in keys.values()] + [escrow_public]
    wrapped = wrap_many(sealed.data_key, publics)
    wraps = [KeyWrap(c, k, w) for (c, k), w in zip(keys.items(), wrapped, strict=False)]
    wraps.append(KeyWrap(ESCROW, escrow_key_id, wrapped[-1]))
    return Sealed(sealed.ciphertext, sealed.nonce, wraps)


def notice_write(
    agency: Agency,
    draft: Draft,
    planned: Plan,
    sealed: Sealed,
    now: datetime,
    limits: Limits,
    request_id: str | None,
    outbox: Sequence[dict[str, Any]],
) -> repo.NoticeWrite:
    """Everything the accepted notice writes in its one transaction."""
    sig = agency.signature
    idempotency = None
    if draft.idempotency_key:
        idempotency = IdempotentAnswer(
            agency.organisation,
            draft.idempotency_key,
            draft.request_hash,
            planned.facts.id,
            planned.response,
            now,
        )
    return rows.notice_write(
        new_notice(agency, draft, planned, sealed, now),
        sealed.wraps,
        [
            NewDelivery(r.contact, r.role, r.jurisdiction, r.rule, r.policy_ids, r.deputy)
            for r in planned.recipients
        ],
        NonceUse(sig.keyid, sig.nonce, agency.nonce_expiry(limits.clock_skew_seconds)),
        idempotency,
        cancels=planned.supersedes if planned.kind == "cancel" else None,
        audit=accepted(posting(agency, planned, sealed), now, request_id),
        outbox=outbox,
    )


def new_notice(
    agency: Agency, draft: Draft, planned: Plan, sealed: Sealed, now: datetime
) -> NewNotice:
    sig, facts, document = agency.signature, planned.facts, draft.document
    return NewNotice(
        id=facts.id,
        sender=agency.organisation,
        sender_key_id=sig.keyid,
        channel=facts.channel,
        jurisdiction=facts.jurisdiction,
        severity=facts.severity,
        marking=planned.channel.marking.value,
        policy_hash=planned.policy_hash,
        kind=planned.kind,
        supersedes=planned.supersedes,
        addressees=facts.addressees,
        requesting_role=document.get("requesting_role"),
        in_reply_to=document.get("in_reply_to"),
        created_at=now,
        expires_at=planned.expires,
        retain_until=now + timedelta(days=planned.channel.retention_days),
        recipient_count=planned.response["recipient_count"],
        aead=AEAD,
        aead_nonce=sealed.nonce,
        ciphertext=sealed.ciphertext,
        content_digest=sig.values.get("content-digest", ""),
        signature_input=sig.signature_input_header,
        signature=sig.signature_header,
        signed_values=sig.values,
        exercise=facts.exercise,
    )


def posting(agency: Agency, planned: Plan, sealed: Sealed) -> Posting:
    """What the audit log records of the accepted notice (``audit.notice_events``)."""
    sig, facts = agency.signature, planned.facts
    return Posting(
        notice_id=facts.id,
        channel=facts.channel,
        jurisdiction=facts.jurisdiction,
        severity=facts.severity,
        kind=planned.kind,
        supersedes=planned.supersedes,
        sender=agency.organisation,
        sender_key=sig.keyid,
        content_digest=sig.values.get("content-digest", ""),
        signature=sig.signature,
        policy_hash=planned.policy_hash,
        publish_policies=planned.publish_policies,
        recipients=planned.recipients,
        not_reached=planned.not_reached,
        wrap_keys={w.recipient: w.key_id for w in sealed.wraps},
        escrow_key=sealed.wraps[-1].key_id,
        exercise=facts.exercise,
    )
