"""An acknowledgement and its optional reply: checked and shaped without I/O.

Invariants:
- an acknowledgement is signed with the contact's own current Ed25519 key over the notice's
  content digest (``domain.notice.ack_statement``): it proves the contact acknowledged exactly
  what the agency sent;
- a reply is taken only on a channel that takes replies, encrypted to a current X25519 key of the
  sending agency; the broker passes it on unread.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.crypto.httpsig import ed25519_verify
from broker.domain.directory import KeyType
from broker.domain.notice import ack_statement
from broker.errors import NoticeInvalid
from broker.policy.payload import Violation
from broker.state import View
from broker.store.deliveries_repo import InboxItem


def verify_ack(
    view: View, contact: str, notice_id: str, row: dict[str, Any], body: Any, now: datetime
) -> None:
    """``NoticeInvalid`` unless ``body`` carries a signature by ``contact``'s current key."""
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("signature"), str)
        or not isinstance(body.get("key_id"), str)
    ):
        raise NoticeInvalid([Violation("", "an acknowledgement carries key_id and signature")])
    key = view.directory.keys.get(body["key_id"])
    signature = unb64(body["signature"], "/signature")
    statement = ack_statement(notice_id, contact, row["content_digest"])
    if (
        key is None
        or key.owner != contact
        or key.type is not KeyType.ED25519
        or not key.usable_at(now)
        or not ed25519_verify(key.public, statement, signature)
    ):
        raise NoticeInvalid(
            [Violation("/signature", "does not verify for this contact and this notice's content")]
        )


def reply_row(
    view: View,
    row: dict[str, Any],
    contact: str,
    deliveries: list[InboxItem],
    reply: Any,
    now: datetime,
    foreign_keys: set[str] | None = None,
) -> dict[str, Any] | None:
    """The reply row to store, or None without a reply; ``NoticeInvalid`` for a bad one.

    ``foreign_keys``: for a notice received from a peer, the key ids the sending country binds
    to the agency (``federation/replies.py``); the reply must be sealed to one of them."""
    if reply is None:
        return None
    channel = view.policies.channels.get(row["channel"])
    if channel is None or not channel.replies:
        raise NoticeInvalid([Violation("/reply", "this channel does not take replies")])
    if not isinstance(reply, dict):
        raise NoticeInvalid([Violation("/reply", "must be an object")])
    key = view.directory.keys.get(str(reply.get("key_id")))
    if foreign_keys is not None:
        if str(reply.get("key_id")) not in foreign_keys:
            raise NoticeInvalid(
                [Violation("/reply/key_id", "must be a current X25519 key of the sending agency")]
            )
    elif (
        key is None
        or key.owner != row["sender_id"]
        or key.type is not KeyType.X25519
        or not key.usable_at(now)
    ):
        raise NoticeInvalid(
            [Violation("/reply/key_id", "must be a current X25519 key of the sending agency")]
        )
    return {
        "notice_id": row["id"],
        "contact_id": contact,
        "role_id": deliveries[0].role,
        "created_at": now,
        "key_id": str(reply.get("key_id")),
        "wrap": unb64(reply.get("wrap"), "/reply/wrap"),
        "nonce": unb64(reply.get("nonce"), "/reply/nonce"),
        "ciphertext": unb64(reply.get("ciphertext"), "/reply/ciphertext"),
    }


def ack_events(
    contact: str,
    notice_id: str,
    row: dict[str, Any],
    deliveries: list[InboxItem],
    body: dict[str, Any],
    reply: dict[str, Any] | None,
    now: datetime,
    request_id: str | None,
    *,
    peer: tuple[str, str] | None = None,
) -> list[AuditEvent]:
    """The audit events an acknowledgement (and its reply) commits with it; ``peer``: the peer
    and its notice id, for a notice received from it (the reply goes back there)."""
    events = [
        AuditEvent(
            at=now,
            actor=f"contact:{contact}",
            action="delivery.acknowledged",
            object=f"notice:{notice_id}",
            channel=row["channel"],
            details={
                "roles": sorted({d.role for d in deliveries}),
                "key": body["key_id"],
                "content_digest": row["content_digest"],
                "signature": body["signature"],
            },
            request=request_id,
        )
    ]
    if reply is not None:
        events.append(
            AuditEvent(
                at=now,
                actor=f"contact:{contact}",
                action="reply.received",
                object=f"notice:{notice_id}",
                channel=row["channel"],
                details={
                    "to_key": reply["key_id"],
                    "bytes": len(reply["ciphertext"]),
                    **({"peer": peer[0], "peer_notice_id": peer[1]} if peer else {}),
                },
                request=request_id,
            )
        )
    return events


def unb64(value: Any, pointer: str) -> bytes:
    if not isinstance(value, str) or len(value) > 350_000:
        raise NoticeInvalid([Violation(pointer, "must be base64 text")])
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise NoticeInvalid([Violation(pointer, "must be base64 text")]) from e
