"""A relayed crossing: the peer a notice received here goes on to, and the country it came from.

Revision ID: 0013_relay
Revises: 0012_exercise
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_relay"
down_revision = "0012_exercise"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("federation_crossing", sa.Column("relay_to", sa.String(64), nullable=True))
    op.add_column("federation_crossing", sa.Column("origin_country", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("federation_crossing") as batch:
        batch.drop_column("origin_country")
        batch.drop_column("relay_to")
