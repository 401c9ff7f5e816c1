"""Plain domain values (``broker.domain.writes``) turned into rows: the only place outside the
repositories where column names appear. Lists are stored as JSON text, as the tables say."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.domain.writes import IdempotentAnswer, KeyWrap, NewDelivery, NewNotice, NonceUse
from broker.store.intake_repo import NoticeWrite


def notice_write(
    notice: NewNotice,
    wraps: Sequence[KeyWrap],
    deliveries: Sequence[NewDelivery],
    nonce: NonceUse,
    idempotency: IdempotentAnswer | None,
    *,
    cancels: str | None,
    audit: Sequence[AuditEvent],
    outbox: Sequence[dict[str, Any]],
) -> NoticeWrite:
    """Everything one accepted notice writes, in one transaction (``intake_repo.commit_*``)."""
    return NoticeWrite(
        notice_row(notice),
        wrap_rows(notice.id, wraps),
        delivery_rows(notice.id, deliveries, notice.created_at),
        {"key_id": nonce.key_id, "nonce": nonce.nonce, "expires_at": nonce.expires_at},
        None if idempotency is None else idempotency_row(idempotency),
        cancels=cancels,
        audit=audit,
        outbox=outbox,
    )


def notice_row(n: NewNotice) -> dict[str, Any]:
    return {
        "id": n.id,
        "sender_id": n.sender,
        "sender_key_id": n.sender_key_id,
        "channel": n.channel,
        "jurisdiction_id": n.jurisdiction,
        "severity": n.severity,
        "marking": n.marking,
        "exercise": n.exercise,
        "policy_hash": n.policy_hash,
        "kind": n.kind,
        "supersedes_id": n.supersedes,
        "addressees": json.dumps(list(n.addressees)),
        "requesting_role": n.requesting_role,
        "in_reply_to": n.in_reply_to,
        "status": "active",
        "created_at": n.created_at,
        "expires_at": n.expires_at,
        "retain_until": n.retain_until,
        "recipient_count": n.recipient_count,
        "aead": n.aead,
        "aead_nonce": n.aead_nonce,
        "ciphertext": n.ciphertext,
        "content_digest": n.content_digest,
        "signature_input": n.signature_input,
        "signature": n.signature,
        "signed_values": json.dumps(dict(n.signed_values)),
    }


def wrap_rows(notice_id: str, wraps: Sequence[KeyWrap]) -> list[dict[str, Any]]:
    return [
        {"notice_id": notice_id, "recipient_id": w.recipient, "key_id": w.key_id, "wrap": w.wrap}
        for w in wraps
    ]


def delivery_rows(
    notice_id: str, deliveries: Sequence[NewDelivery], now: datetime
) -> list[dict[str, Any]]:
    """New deliveries (state pending); a first delivery leaves the escalation level to the table.
    The deliveries of a notice mostly share their policies: each list is encoded once."""
    encoded: dict[tuple[str, ...], str] = {}
    for d in deliveries:
        ids = tuple(d.policy_ids)
        if ids not in encoded:
            encoded[ids] = json.dumps(list(ids))
    return [_delivery_row(notice_id, d, now, encoded[tuple(d.policy_ids)]) for d in deliveries]


def _delivery_row(notice_id: str, d: NewDelivery, now: datetime, policy_ids: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "notice_id": notice_id,
        "contact_id": d.contact,
        "role_id": d.role,
        "jurisdiction_id": d.jurisdiction,
        "rule": d.rule,
        "policy_ids": policy_ids,
        "deputy": d.deputy,
        "state": "pending",
        "created_at": now,
    }
    if d.escalation_level is not None:
        row["escalation_level"] = d.escalation_level
    return row


def idempotency_row(a: IdempotentAnswer) -> dict[str, Any]:
    return {
        "sender_id": a.sender,
        "key": a.key,
        "request_hash": a.request_hash,
        "notice_id": a.notice_id,
        "response": json.dumps(a.response),
        "created_at": a.created_at,
    }
