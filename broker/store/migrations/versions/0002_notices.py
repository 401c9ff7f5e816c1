"""Notices, key wraps, deliveries, replay nonces and idempotency records.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("sender_key_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("jurisdiction_id", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("marking", sa.String(16), nullable=False),
        sa.Column("policy_hash", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("supersedes_id", sa.String(40), nullable=True),
        sa.Column("addressees", sa.Text(), nullable=False),
        sa.Column("requesting_role", sa.String(128), nullable=True),
        sa.Column("in_reply_to", sa.String(40), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("retain_until", UTCDateTime(), nullable=False),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        sa.Column("aead", sa.String(32), nullable=False),
        sa.Column("aead_nonce", sa.LargeBinary(), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("content_digest", sa.Text(), nullable=False),
        sa.Column("signature_input", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("signed_values", sa.Text(), nullable=False),
    )
    op.create_index("ix_notice_sender_id", "notice", ["sender_id"])
    op.create_index("ix_notice_supersedes_id", "notice", ["supersedes_id"])
    op.create_index("ix_notice_created_at", "notice", ["created_at"])
    op.create_table(
        "notice_wrap",
        sa.Column("notice_id", sa.String(40), primary_key=True),
        sa.Column("recipient_id", sa.String(128), primary_key=True),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("wrap", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.String(40), nullable=False),
        sa.Column("contact_id", sa.String(128), nullable=False),
        sa.Column("role_id", sa.String(128), nullable=False),
        sa.Column("jurisdiction_id", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("policy_ids", sa.Text(), nullable=False),
        sa.Column("deputy", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("read_at", UTCDateTime(), nullable=True),
        sa.Column("acked_at", UTCDateTime(), nullable=True),
        sa.Column("escalated_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("notice_id", "contact_id", "role_id", name="uq_delivery_recipient"),
    )
    op.create_index("ix_delivery_notice_id", "delivery", ["notice_id"])
    op.create_index("ix_delivery_contact_id", "delivery", ["contact_id"])
    op.create_table(
        "request_nonce",
        sa.Column("key_id", sa.String(128), primary_key=True),
        sa.Column("nonce", sa.String(128), primary_key=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_request_nonce_expires_at", "request_nonce", ["expires_at"])
    op.create_table(
        "idempotency",
        sa.Column("sender_id", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("notice_id", sa.String(40), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("idempotency", "request_nonce", "delivery", "notice_wrap", "notice"):
        op.drop_table(table)
