"""Federation status: what a receiving broker last reported of a notice, and what the sender saw.

Revision ID: 0009_federation_status
Revises: 0008_release
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0009_federation_status"
down_revision = "0008_release"
branch_labels = None
depends_on = None

COLUMNS = ("report_armed", "report_sent", "foreign_status", "foreign_status_at")


def upgrade() -> None:
    with op.batch_alter_table("federation_crossing") as batch:
        # Receiving side: digests of the per-role snapshot last queued and last accepted.
        batch.add_column(sa.Column("report_armed", sa.String(64), nullable=True))
        batch.add_column(sa.Column("report_sent", sa.String(64), nullable=True))
        # Sending side: the peer's per-role states (JSON), as of its latest report.
        batch.add_column(sa.Column("foreign_status", sa.Text(), nullable=True))
        batch.add_column(sa.Column("foreign_status_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("federation_crossing") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
