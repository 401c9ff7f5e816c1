"""Webhook endpoints from the directory, disabled endpoints, and the outbox of calls and alerts.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret_ref", sa.String(300), nullable=True),
        sa.Column("content", sa.String(16), nullable=False),
    )
    op.create_index("ix_webhook_endpoint_owner_id", "webhook_endpoint", ["owner_id"])
    op.create_table(
        "webhook_disabled",
        sa.Column("endpoint_id", sa.String(128), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.String(40), nullable=False),
        sa.Column("contact_id", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("msg_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("notice_id", "kind", "target", name="uq_outbox_message"),
    )
    op.create_index("ix_outbox_next_attempt_at", "outbox", ["next_attempt_at"])


def downgrade() -> None:
    for table in ("outbox", "webhook_disabled", "webhook_endpoint"):
        op.drop_table(table)
