"""Federation: each notice's half of a border crossing (forwarded or received) and its origin.

Revision ID: 0007_federation
Revises: 0006_enrolment
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0007_federation"
down_revision = "0006_enrolment"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_crossing",
        sa.Column("notice_id", sa.String(40), primary_key=True),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("peer_notice_id", sa.String(40), nullable=False),
        sa.Column("agreement", sa.String(128), nullable=False),
        sa.Column("origin_root", sa.LargeBinary(), nullable=True),
        sa.Column("origin_bindings", sa.LargeBinary(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("peer", "direction", "peer_notice_id", name="uq_crossing"),
    )


def downgrade() -> None:
    op.drop_table("federation_crossing")
