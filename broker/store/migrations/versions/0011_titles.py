"""Names in the region's eight languages: jurisdiction and organisation names, role titles.

Revision ID: 0011_titles
Revises: 0010_witness
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_titles"
down_revision = "0010_witness"
branch_labels = None
depends_on = None

# JSON object {language tag: text} beside the default name; NULL where the file gave plain text.
TABLES = ("jurisdiction", "organisation", "role")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("translations", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("translations")
