"""SQLModel tables. Schema changes go through a migration in ``migrations/versions``.

``tests/unit/test_migrations.py`` compares these models with the migrated schema, so the two
cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from broker.store.types import UTCDateTime


class JurisdictionRow(SQLModel, table=True):
    __tablename__ = "jurisdiction"
    id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=300)
    level: str = Field(max_length=32)
    parent_id: str | None = Field(default=None, max_length=128, index=True)
    # {language tag: text} as JSON beside the default name (broker.titles); NULL: plain text.
    translations: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


class OrganisationRow(SQLModel, table=True):
    __tablename__ = "organisation"
    id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=300)
    kind: str = Field(max_length=64)
    jurisdiction_id: str = Field(max_length=128, index=True)
    translations: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


class RoleRow(SQLModel, table=True):
    __tablename__ = "role"
    id: str = Field(primary_key=True, max_length=128)
    organisation_id: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=64)
    title: str = Field(max_length=300)
    translations: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


class ContactRow(SQLModel, table=True):
    __tablename__ = "contact"
    id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=300)
    organisation_id: str = Field(max_length=128)
    email: str | None = Field(default=None, max_length=254)
    language: str = Field(default="en", max_length=35)


class AssignmentRow(SQLModel, table=True):
    __tablename__ = "assignment"
    id: int | None = Field(default=None, primary_key=True)
    role_id: str = Field(max_length=128, index=True)
    contact_id: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=16)
    valid_from: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    valid_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # JSON list of {"from": ..., "until": ...}; absences are read with the assignment, never queried.
    absences: str = Field(default="[]", sa_column=Column(Text(), nullable=False))


class PublicKeyRow(SQLModel, table=True):
    __tablename__ = "public_key"
    id: str = Field(primary_key=True, max_length=128)
    owner_id: str = Field(max_length=128, index=True)
    type: str = Field(max_length=16)
    public: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    status: str = Field(max_length=16)
    valid_from: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    valid_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class DirectoryRevisionRow(SQLModel, table=True):
    __tablename__ = "directory_revision"
    revision: int | None = Field(default=None, primary_key=True)
    applied_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    content_hash: str = Field(max_length=64)
    summary: str = Field(max_length=300)
    actor: str = Field(max_length=128)


class NoticeRow(SQLModel, table=True):
    """A notice: routing metadata in the clear, everything the agency wrote as ciphertext."""

    __tablename__ = "notice"
    id: str = Field(primary_key=True, max_length=40)
    sender_id: str = Field(max_length=128, index=True)
    sender_key_id: str = Field(max_length=128)
    channel: str = Field(max_length=64)
    jurisdiction_id: str = Field(max_length=128)
    severity: str = Field(max_length=16)
    marking: str = Field(max_length=16)
    # "exercise" or "test" when the agency marked the notice so (a copy of the signed field:
    # recipients check it against what they decrypt); None for a real notice.
    exercise: str | None = Field(default=None, max_length=16)
    policy_hash: str = Field(max_length=80)
    kind: str = Field(max_length=16)  # notice | update | cancel
    supersedes_id: str | None = Field(default=None, max_length=40, index=True)
    # Addressed requests and their answers: whom a request was for, which role asked, and
    # which request an answer answers.
    addressees: str = Field(default="[]", sa_column=Column(Text(), nullable=False))  # JSON list
    requesting_role: str | None = Field(default=None, max_length=128)
    in_reply_to: str | None = Field(default=None, max_length=40)
    status: str = Field(max_length=16)  # active | cancelled | expired | shredded
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    retain_until: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    recipient_count: int
    aead: str = Field(max_length=32)
    aead_nonce: bytes | None = Field(default=None, sa_column=Column(LargeBinary(), nullable=True))
    ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary(), nullable=True))
    # The agency's signature material, so a recipient can verify after decryption.
    content_digest: str = Field(sa_column=Column(Text(), nullable=False))
    signature_input: str = Field(sa_column=Column(Text(), nullable=False))
    signature: str = Field(sa_column=Column(Text(), nullable=False))
    signed_values: str = Field(sa_column=Column(Text(), nullable=False))  # JSON: component -> value


class WrapRow(SQLModel, table=True):
    """The notice's data key sealed for one recipient (or the broker's escrow key)."""

    __tablename__ = "notice_wrap"
    notice_id: str = Field(primary_key=True, max_length=40)
    recipient_id: str = Field(primary_key=True, max_length=128)
    key_id: str = Field(max_length=128)
    wrap: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))


class DeliveryRow(SQLModel, table=True):
    """One recipient of one notice through one role, and how far delivery has got."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("notice_id", "contact_id", "role_id", name="uq_delivery_recipient"),
    )
    id: int | None = Field(default=None, primary_key=True)
    notice_id: str = Field(max_length=40, index=True)
    contact_id: str = Field(max_length=128, index=True)
    role_id: str = Field(max_length=128)
    jurisdiction_id: str = Field(max_length=128)
    rule: str = Field(max_length=64)
    policy_ids: str = Field(sa_column=Column(Text(), nullable=False))  # JSON list
    deputy: bool = False
    state: str = Field(max_length=16)  # pending | delivered | read | acknowledged | escalated
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    read_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    acked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    escalated_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # 0 for a recipient chosen by routing; n for the n-th role of the channel's escalation chain.
    escalation_level: int = Field(
        default=0, sa_column=Column(Integer(), nullable=False, server_default="0")
    )
    # The contact's Ed25519 signature over the acknowledgement statement (base64).
    ack_signature: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


class ReplyRow(SQLModel, table=True):
    """A recipient's reply, encrypted to the sending agency's X25519 key; the broker cannot read it."""

    __tablename__ = "reply"
    id: int | None = Field(default=None, primary_key=True)
    notice_id: str = Field(max_length=40, index=True)
    contact_id: str = Field(max_length=128)
    role_id: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    key_id: str = Field(max_length=128)
    wrap: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))


class NonceRow(SQLModel, table=True):
    """A (key, nonce) pair seen in a signed request; kept until it can no longer be replayed."""

    __tablename__ = "request_nonce"
    key_id: str = Field(primary_key=True, max_length=128)
    nonce: str = Field(primary_key=True, max_length=128)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class IdempotencyRow(SQLModel, table=True):
    """The answer given to (sender, idempotency key), and the hash of the body it was for."""

    __tablename__ = "idempotency"
    sender_id: str = Field(primary_key=True, max_length=128)
    key: str = Field(primary_key=True, max_length=128)
    request_hash: str = Field(max_length=64)
    notice_id: str = Field(max_length=40)
    response: str = Field(sa_column=Column(Text(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AuditEventRow(SQLModel, table=True):
    """One audit event: its canonical bytes (what is hashed) and columns to find it by."""

    __tablename__ = "audit_event"
    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor: str = Field(max_length=160, index=True)
    action: str = Field(max_length=64, index=True)
    object: str = Field(max_length=200)
    notice_id: str | None = Field(default=None, max_length=40, index=True)
    channel: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=16)
    body: str = Field(sa_column=Column(Text(), nullable=False))
    leaf: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))


class AuditHeadRow(SQLModel, table=True):
    """The single row every append locks: size, last leaf, and the tree's compact range."""

    __tablename__ = "audit_head"
    id: int = Field(primary_key=True)
    size: int
    last_leaf: str = Field(max_length=64)
    frontier: str = Field(sa_column=Column(Text(), nullable=False))


class AuditCheckpointRow(SQLModel, table=True):
    __tablename__ = "audit_checkpoint"
    size: int = Field(primary_key=True)
    root: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    note: str = Field(sa_column=Column(Text(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class WebhookRow(SQLModel, table=True):
    """A directory webhook endpoint (replaced with the directory; its secret only by reference)."""

    __tablename__ = "webhook_endpoint"
    id: str = Field(primary_key=True, max_length=128)
    owner_id: str = Field(max_length=128, index=True)
    url: str = Field(max_length=2000)
    secret_ref: str | None = Field(default=None, max_length=300)
    content: str = Field(max_length=16)


class WebhookDisabledRow(SQLModel, table=True):
    """An endpoint that answered 410 Gone: no more deliveries until the directory re-declares it."""

    __tablename__ = "webhook_disabled"
    endpoint_id: str = Field(primary_key=True, max_length=128)
    url: str = Field(max_length=2000)
    disabled_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class OutboxRow(SQLModel, table=True):
    """One webhook call or e-mail alert to make, retried from here until sent or dead-lettered."""

    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("notice_id", "kind", "target", name="uq_outbox_message"),)
    id: int | None = Field(default=None, primary_key=True)
    notice_id: str = Field(max_length=40)
    contact_id: str | None = Field(default=None, max_length=128)
    kind: str = Field(max_length=16)  # webhook | email
    target: str = Field(max_length=300)  # endpoint id, or e-mail address
    msg_id: str = Field(max_length=64)
    state: str = Field(max_length=16)  # pending | sent | dead
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


DIRECTORY_TABLES = (
    JurisdictionRow,
    OrganisationRow,
    RoleRow,
    ContactRow,
    AssignmentRow,
    PublicKeyRow,
    WebhookRow,
)


class EnrolmentCodeRow(SQLModel, table=True):
    """A one-time enrolment code, kept only as its SHA-256; used once, before it expires."""

    __tablename__ = "enrolment_code"
    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(max_length=128, index=True)
    code_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_by: str = Field(max_length=128)


class EnrolmentPendingRow(SQLModel, table=True):
    """Public keys a device made with a code, waiting for an administrator's approval.

    No fingerprint column on purpose: approval recomputes it from the keys themselves."""

    __tablename__ = "enrolment_pending"
    id: int | None = Field(default=None, primary_key=True)
    contact_id: str = Field(max_length=128, index=True)
    code_id: int
    signing_public: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    encryption_public: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    submitted_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    state: str = Field(max_length=16)  # pending | approved | superseded
    decided_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class EnrolmentAttemptRow(SQLModel, table=True):
    """A refused enrolment code, by source: what the rate limit counts."""

    __tablename__ = "enrolment_attempt"
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=64, index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))


class FederationCrossingRow(SQLModel, table=True):
    """One notice's half of a border crossing: forwarded from here, or received from a peer.

    Received, it keeps what the recipient's client needs to verify the foreign agency: the
    sending broker's signed directory root and key bindings, exactly as they came."""

    __tablename__ = "federation_crossing"
    __table_args__ = (UniqueConstraint("peer", "direction", "peer_notice_id", name="uq_crossing"),)
    notice_id: str = Field(primary_key=True, max_length=40)
    peer: str = Field(max_length=64)
    direction: str = Field(max_length=8)  # send | receive
    peer_notice_id: str = Field(max_length=40)
    agreement: str = Field(max_length=128)
    # Relayed (the hub): the peer a notice received here is forwarded on to; None otherwise.
    relay_to: str | None = Field(default=None, max_length=64)
    # The country whose directory ``origin_root`` is (None: the peer's own, a direct crossing).
    origin_country: str | None = Field(default=None, max_length=128)
    origin_root: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    origin_bindings: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )
    answer: str = Field(sa_column=Column(Text, nullable=False))  # the 201 body, given again
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    # Received: digests of the per-role snapshot last queued for the peer, and last accepted.
    report_armed: str | None = Field(default=None, max_length=64)
    report_sent: str | None = Field(default=None, max_length=64)
    # Forwarded: the peer's per-role states (JSON, role ids and states only), as of its report.
    foreign_status: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    foreign_status_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class ReleaseRow(SQLModel, table=True):
    """A notice held for two-person release: its planned deliveries (JSON) until a second
    officer approves, and the decision (waiting, approved, refused, timed_out)."""

    __tablename__ = "notice_release"
    notice_id: str = Field(max_length=40, primary_key=True)
    state: str = Field(max_length=16, index=True)
    deadline: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    deliveries: str = Field(sa_column=Column(Text(), nullable=False))
    decided_by: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    reason: str | None = Field(default=None, max_length=500)


class WitnessLogRow(SQLModel, table=True):
    """What this broker, as a witness of a peer's log (c2sp.org/tlog-witness), cosigned last:
    one row per log origin, moved forward only by a compare-and-swap on (size, root)."""

    __tablename__ = "witness_log"
    origin: str = Field(primary_key=True, max_length=200)
    peer: str = Field(max_length=64)
    size: int
    root: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    cosigned_at: int
    checkpoint: str = Field(sa_column=Column(Text(), nullable=False))  # with our cosignature
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class WitnessEvidenceRow(SQLModel, table=True):
    """A checkpoint a peer signed that this witness refused (a rewritten history, a fork): the
    request exactly as it came, kept as proof of the log's misbehaviour (once per request)."""

    __tablename__ = "witness_evidence"
    id: int | None = Field(default=None, primary_key=True)
    origin: str = Field(max_length=200, index=True)
    peer: str = Field(max_length=64)
    code: str = Field(max_length=64)
    message: str = Field(max_length=1000)
    digest: str = Field(max_length=64, unique=True, index=True)  # SHA-256 of the request body
    request: str = Field(sa_column=Column(Text(), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
