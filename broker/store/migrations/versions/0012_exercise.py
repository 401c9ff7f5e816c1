"""Exercise and test notices: the agency's marking, copied beside the notice's routing metadata.

Revision ID: 0012_exercise
Revises: 0011_titles
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_exercise"
down_revision = "0011_titles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notice", sa.Column("exercise", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("exercise")
