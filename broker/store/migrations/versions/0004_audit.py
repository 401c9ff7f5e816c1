"""The audit log: events, the head row every append locks, and signed checkpoints.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(200), nullable=False),
        sa.Column("notice_id", sa.String(40), nullable=True),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
    )
    for column in ("at", "actor", "action", "notice_id"):
        op.create_index(f"ix_audit_event_{column}", "audit_event", [column])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("last_leaf", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "size": 0, "last_leaf": "0" * 64, "frontier": "[]"}])
    op.create_table(
        "audit_checkpoint",
        sa.Column("size", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_checkpoint", "audit_head", "audit_event"):
        op.drop_table(table)
