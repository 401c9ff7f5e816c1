"""Enrolment: one-time codes (hashed), public keys awaiting approval, refused code attempts.

Revision ID: 0006_enrolment
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0006_enrolment"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrolment_code",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("contact_id", sa.String(128), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_enrolment_code_contact_id", "enrolment_code", ["contact_id"])
    op.create_table(
        "enrolment_pending",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("contact_id", sa.String(128), nullable=False),
        sa.Column("code_id", sa.Integer(), nullable=False),
        sa.Column("signing_public", sa.LargeBinary(), nullable=False),
        sa.Column("encryption_public", sa.LargeBinary(), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_enrolment_pending_contact_id", "enrolment_pending", ["contact_id"])
    op.create_table(
        "enrolment_attempt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_enrolment_attempt_source", "enrolment_attempt", ["source"])
    op.create_index("ix_enrolment_attempt_at", "enrolment_attempt", ["at"])


def downgrade() -> None:
    for table in ("enrolment_attempt", "enrolment_pending", "enrolment_code"):
        op.drop_table(table)
