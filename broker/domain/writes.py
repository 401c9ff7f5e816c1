"""What an accepted notice (or a later delivery of it) adds to the store, as plain values.

The service builds these; the store alone turns them into rows (``broker.store.rows``), so no
column name appears outside the store. Contents appear only as ciphertext.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class NewNotice:
    """An accepted notice: routing metadata, sealed contents and the sender's signed evidence."""

    id: str
    sender: str
    sender_key_id: str
    channel: str
    jurisdiction: str
    severity: str
    marking: str
    policy_hash: str
    kind: str  # notice | update | cancel
    supersedes: str | None
    addressees: tuple[str, ...]
    requesting_role: str | None
    in_reply_to: str | None
    created_at: datetime
    expires_at: datetime | None
    retain_until: datetime
    recipient_count: int
    aead: str
    aead_nonce: bytes
    ciphertext: bytes
    content_digest: str
    signature_input: str
    signature: str
    signed_values: Mapping[str, str]
    exercise: str | None = None  # "exercise" | "test", as the agency signed it


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One recipient's delivery of a notice through one role."""

    contact: str
    role: str
    jurisdiction: str
    rule: str
    policy_ids: tuple[str, ...]
    deputy: bool
    escalation_level: int | None = None  # None: a first delivery (the store's default level)


@dataclass(frozen=True, slots=True)
class KeyWrap:
    """The notice's data key wrapped for one recipient (or the escrow)."""

    recipient: str
    key_id: str
    wrap: bytes


@dataclass(frozen=True, slots=True)
class NonceUse:
    """A request nonce, remembered until its request is outside the skew window."""

    key_id: str
    nonce: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IdempotentAnswer:
    """The answer given to one (sender, idempotency key), replayed to every retry."""

    sender: str
    key: str
    request_hash: str
    notice_id: str
    response: Mapping[str, Any]
    created_at: datetime
