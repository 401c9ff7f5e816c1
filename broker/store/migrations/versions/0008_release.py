"""Two-person release: notices held until a second officer of the sending agency approves.

Revision ID: 0008_release
Revises: 0007_federation
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0008_release"
down_revision = "0007_federation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_release",
        sa.Column("notice_id", sa.String(40), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=False),
        sa.Column("deliveries", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
    )
    op.create_index("ix_notice_release_state", "notice_release", ["state"])


def downgrade() -> None:
    op.drop_table("notice_release")
