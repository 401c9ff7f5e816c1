"""SQLModel tables. Schema changes go through a migration in ``migrations/versions``.

``tests/unit/test_migrations.py`` compares these models with the migrated schema, so the two
cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from broker.store.types import UTCDateTime


class JurisdictionRow(SQLModel, table=True):
    __tablename__ = "jurisdiction"
    id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=300)
    level: str = Field(max_length=32)
    parent_id: str | None = Field(default=None, max_length=128, index=True)


class OrganisationRow(SQLModel, table=True):
    __tablename__ = "organisation"
    id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=300)
    kind: str = Field(max_length=64)
    jurisdiction_id: str = Field(max_length=128, index=True)


class RoleRow(SQLModel, table=True):
    __tablename__ = "role"
    id: str = Field(primary_key=True, max_length=128)
    organisation_id: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=64)
    title: str = Field(max_length=300)


class ContactRow(SQLModel, table=True):
    __tablename__ = "contact"
    id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=300)
    organisation_id: str = Field(max_length=128)
    email: str | None = Field(default=None, max_length=254)
    language: str = Field(default="en", max_length=35)


class AssignmentRow(SQLModel, table=True):
    __tablename__ = "assignment"
    id: int | None = Field(default=None, primary_key=True)
    role_id: str = Field(max_length=128, index=True)
    contact_id: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=16)
    valid_from: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    valid_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    # JSON list of {"from": ..., "until": ...}; absences are read with the assignment, never queried.
    absences: str = Field(default="[]", sa_column=Column(Text(), nullable=False))


class PublicKeyRow(SQLModel, table=True):
    __tablename__ = "public_key"
    id: str = Field(primary_key=True, max_length=128)
    owner_id: str = Field(max_length=128, index=True)
    type: str = Field(max_length=16)
    public: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    status: str = Field(max_length=16)
    valid_from: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    valid_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class DirectoryRevisionRow(SQLModel, table=True):
    __tablename__ = "directory_revision"
    revision: int | None = Field(default=None, primary_key=True)
    applied_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    content_hash: str = Field(max_length=64)
    summary: str = Field(max_length=300)
    actor: str = Field(max_length=128)


DIRECTORY_TABLES = (
    JurisdictionRow,
    OrganisationRow,
    RoleRow,
    ContactRow,
    AssignmentRow,
    PublicKeyRow,
)
