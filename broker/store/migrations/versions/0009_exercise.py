"""Exercise and test notices: the agency's marking, copied beside the notice's routing metadata.

Revision ID: 0009_exercise
Revises: 0008_release
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_exercise"
down_revision = "0008_release"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notice", sa.Column("exercise", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("exercise")
