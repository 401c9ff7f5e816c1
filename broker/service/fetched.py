"""The answer to a recipient's fetch: ciphertext, this contact's own wrap, and what lets the
client verify the sender's signature itself. Never a data key; shaped without I/O."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.crypto.envelope import associated_data
from broker.domain.directory import KeyType
from broker.service.names import ack_deadline, names, role_title
from broker.state import View
from broker.store.deliveries_repo import InboxItem


def fetched_event(
    contact: str,
    notice_id: str,
    row: dict[str, Any],
    deliveries: list[InboxItem],
    wrap: tuple[str, bytes],
    now: datetime,
    request_id: str | None,
) -> AuditEvent:
    return AuditEvent(
        at=now,
        actor=f"contact:{contact}",
        action="notice.fetched",
        object=f"notice:{notice_id}",
        channel=row["channel"],
        decision="allow",
        policies=("access/recipients-read-their-notices",),
        details={"roles": sorted({d.role for d in deliveries}), "wrap_key": wrap[0]},
        request=request_id,
    )


def notice_answer(
    view: View,
    notice_id: str,
    row: dict[str, Any],
    deliveries: list[InboxItem],
    wrap: tuple[str, bytes],
    now: datetime,
    language: str | None = None,
) -> dict[str, Any]:
    sender = view.directory.organisations.get(row["sender_id"])
    channel = view.policies.channels.get(row["channel"])
    return {
        "sender_name": sender.name_in(language) if sender else None,
        "reply_key": reply_key(view, row["sender_id"], now)
        if channel and channel.replies
        else None,
        "id": notice_id,
        "channel": row["channel"],
        "jurisdiction": row["jurisdiction_id"],
        "severity": row["severity"],
        "marking": row["marking"],
        "exercise": row["exercise"],
        "kind": row["kind"],
        "status": row["status"],
        "supersedes": row["supersedes_id"],
        "sender": row["sender_id"],
        "policy_hash": row["policy_hash"],
        "created_at": time_text(row["created_at"]),
        "expires_at": time_text(row["expires_at"]),
        "roles": sorted({d.role for d in deliveries}),
        "acknowledged_at": time_text(
            min((d.acked_at for d in deliveries if d.acked_at), default=None)
        ),
        "encryption": _encryption(notice_id, row, wrap),
        "signature": _signature(view, row),
        **_names(view, row, deliveries, language),
    }


def _names(
    view: View, row: dict[str, Any], deliveries: list[InboxItem], language: str | None
) -> dict[str, Any]:
    """Titles beside the ids, the body's field and value labels, and the acknowledgement
    deadline, for the page (additive), in the reader's language."""
    channel = view.policies.channels.get(row["channel"])
    return {
        **names(
            view, channel=row["channel"], jurisdiction=row["jurisdiction_id"], language=language
        ),
        "role_titles": {
            d.role: role_title(view, d.role, language)
            for d in sorted(deliveries, key=lambda d: d.role)
        },
        "labels": channel.labels.pick(language) if channel else {"fields": {}, "values": {}},
        "ack_deadline": ack_deadline(view, row["channel"], row["created_at"]),
    }


def _encryption(notice_id: str, row: dict[str, Any], wrap: tuple[str, bytes]) -> dict[str, Any]:
    aad = associated_data(notice_id, row["channel"], row["policy_hash"])
    return {
        "aead": row["aead"],
        "nonce": b64(row["aead_nonce"]),
        "aad": b64(aad),
        "ciphertext": b64(row["ciphertext"]),
        "wrap": {"key_id": wrap[0], "sealed": b64(wrap[1])},
    }


def _signature(view: View, row: dict[str, Any]) -> dict[str, Any]:
    sender_key = view.directory.keys.get(row["sender_key_id"])
    return {
        "sender_key_id": row["sender_key_id"],
        "sender_public_key": b64(sender_key.public) if sender_key else None,
        "signature_input": row["signature_input"],
        "signature": row["signature"],
        "signed_values": json.loads(row["signed_values"]),
        "content_digest": row["content_digest"],
    }


def reply_key(view: View, agency: str, now: datetime) -> dict[str, str] | None:
    """The sending agency's current X25519 key, to which a reply is encrypted."""
    keys = [
        k for k in view.directory.keys_of(agency) if k.type is KeyType.X25519 and k.usable_at(now)
    ]
    if not keys:
        return None
    return {"key_id": keys[-1].id, "public": b64(keys[-1].public)}


def time_text(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
