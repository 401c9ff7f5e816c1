"""Escalation levels and signed acknowledgements on deliveries; encrypted replies.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(
            sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("ack_signature", sa.Text(), nullable=True))
    op.create_table(
        "reply",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.String(40), nullable=False),
        sa.Column("contact_id", sa.String(128), nullable=False),
        sa.Column("role_id", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("wrap", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_reply_notice_id", "reply", ["notice_id"])


def downgrade() -> None:
    op.drop_table("reply")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("ack_signature")
        batch.drop_column("escalation_level")
