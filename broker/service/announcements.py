"""What a new delivery announces: one outbox row per webhook endpoint and e-mail address.

Pure: the rows are written by the intake or escalation transaction that makes the deliveries
(so a 201 means they will be attempted), and sent later by ``service.outbox``. One row per
(kind, target) and notice: an organisation's endpoint is told once, however many of its
people receive the notice; ``msg_id`` is stable, so a receiver de-duplicates a resend.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from broker.policy.channel import Channel
from broker.state import View


def message_id(notice_id: str, kind: str, target: str) -> str:
    return "msg_" + hashlib.sha256(f"{notice_id}|{kind}|{target}".encode()).hexdigest()[:26]


def announcement_rows(
    view: View,
    notice_id: str,
    channel: Channel,
    recipients: list[tuple[str, str]],
    now: datetime,
    *,
    email: bool,
) -> list[dict[str, Any]]:
    """Outbox rows for new recipients (contact, role) of a notice on ``channel``; e-mail rows
    only when ``email`` (an SMTP host is configured) and the channel asks for alerts."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    d = view.directory

    def add(kind: str, target: str, contact: str | None) -> None:
        rows.setdefault(
            (kind, target),
            {
                "notice_id": notice_id,
                "contact_id": contact,
                "kind": kind,
                "target": target,
                "msg_id": message_id(notice_id, kind, target),
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            },
        )

    for contact_id, role_id in recipients:
        if channel.delivery.webhook != "off":
            for hook in d.webhooks_of(contact_id):
                add("webhook", hook.id, contact_id)
            organisation = d.roles[role_id].organisation if role_id in d.roles else None
            for hook in d.webhooks_of(organisation or ""):
                add("webhook", hook.id, None)
        contact = d.contacts.get(contact_id)
        if channel.delivery.email == "alert" and email and contact and contact.email:
            add("email", contact.email, contact_id)
    return list(rows.values())


def rewrap_rows(
    view: View, notice_id: str, channel: Channel, contact_id: str, key_id: str, now: datetime
) -> list[dict[str, Any]]:
    """After a re-wrap for ``key_id``: the contact's ciphertext webhooks hear of the notice again
    (they carry the wrap, now the new one). Metadata-only hooks and e-mail need nothing new."""
    if channel.delivery.webhook != "ciphertext":
        return []
    return [
        {
            "notice_id": notice_id,
            "contact_id": contact_id,
            "kind": "webhook",
            "target": hook.id,
            "msg_id": message_id(notice_id, f"webhook-rewrap/{key_id}", hook.id),
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for hook in view.directory.webhooks_of(contact_id)
        if hook.content == "ciphertext"
    ]
