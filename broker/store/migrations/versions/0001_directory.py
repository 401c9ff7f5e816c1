"""The institutional directory and its revisions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from broker.store.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jurisdiction",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("level", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(128), nullable=True),
    )
    op.create_index("ix_jurisdiction_parent_id", "jurisdiction", ["parent_id"])
    op.create_table(
        "organisation",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("jurisdiction_id", sa.String(128), nullable=False),
    )
    op.create_index("ix_organisation_jurisdiction_id", "organisation", ["jurisdiction_id"])
    op.create_table(
        "role",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("organisation_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
    )
    op.create_index("ix_role_organisation_id", "role", ["organisation_id"])
    op.create_table(
        "contact",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("organisation_id", sa.String(128), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("language", sa.String(35), nullable=False),
    )
    op.create_table(
        "assignment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("role_id", sa.String(128), nullable=False),
        sa.Column("contact_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
        sa.Column("absences", sa.Text(), nullable=False),
    )
    op.create_index("ix_assignment_role_id", "assignment", ["role_id"])
    op.create_index("ix_assignment_contact_id", "assignment", ["contact_id"])
    op.create_table(
        "public_key",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("public", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=True),
        sa.Column("valid_until", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_public_key_owner_id", "public_key", ["owner_id"])
    op.create_table(
        "directory_revision",
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("applied_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "directory_revision",
        "public_key",
        "assignment",
        "contact",
        "role",
        "organisation",
        "jurisdiction",
    ):
        op.drop_table(table)
