"""Witnessing peers' logs: the last checkpoint cosigned per log, and the refused ones as evidence.

Revision ID: 0010_witness
Revises: 0009_federation_status
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0010_witness"
down_revision = "0009_federation_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "witness_log",
        sa.Column("origin", sa.String(200), primary_key=True),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("cosigned_at", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "witness_evidence",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.String(1000), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_witness_evidence_origin", "witness_evidence", ["origin"])
    op.create_index("ix_witness_evidence_digest", "witness_evidence", ["digest"], unique=True)


def downgrade() -> None:
    op.drop_table("witness_evidence")
    op.drop_table("witness_log")
