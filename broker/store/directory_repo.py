"""Read and replace the directory in the database.

``replace_directory`` swaps the whole directory in one transaction and records a revision: a
reader sees the old directory or the new one, never a mix. The hot path reads the directory once
per revision and keeps it in memory (see ``current_revision``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.audit.events import AuditEvent
from broker.domain.directory import (
    Assignment,
    AssignmentKind,
    Contact,
    Directory,
    Jurisdiction,
    KeyStatus,
    KeyType,
    Organisation,
    Period,
    PublicKey,
    Role,
    Webhook,
)
from broker.errors import StoreUnavailable
from broker.store import audit_repo
from broker.store.boundary import connection, transaction
from broker.store.tables import (
    DIRECTORY_TABLES,
    AssignmentRow,
    ContactRow,
    DirectoryRevisionRow,
    JurisdictionRow,
    OrganisationRow,
    PublicKeyRow,
    RoleRow,
    WebhookRow,
)
from broker.titles import Translations


def _t(cls: Any) -> Any:
    return cls.__table__


async def load_directory(engine: AsyncEngine) -> tuple[Directory, int]:
    """The directory as stored now, and its revision number (0 when never applied)."""
    async with connection(engine, message="database unreachable") as conn:
        return await _load(conn)


async def _load(conn: AsyncConnection) -> tuple[Directory, int]:
    async def rows(cls: Any) -> list[Any]:
        return list((await conn.execute(select(_t(cls)))).all())

    revision = await _revision(conn)
    jurisdictions = [
        Jurisdiction(r.id, r.name, r.level, r.parent_id, _translations(r.translations))
        for r in await rows(JurisdictionRow)
    ]
    organisations = [
        Organisation(r.id, r.name, r.kind, r.jurisdiction_id, _translations(r.translations))
        for r in await rows(OrganisationRow)
    ]
    roles = [
        Role(r.id, r.organisation_id, r.kind, r.title, _translations(r.translations))
        for r in await rows(RoleRow)
    ]
    contacts = [
        Contact(r.id, r.name, r.organisation_id, r.email, r.language)
        for r in await rows(ContactRow)
    ]
    assignments = [
        Assignment(
            r.role_id,
            r.contact_id,
            AssignmentKind(r.kind),
            Period(r.valid_from, r.valid_until),
            tuple(_period(p) for p in json.loads(r.absences)),
        )
        for r in await rows(AssignmentRow)
    ]
    keys = [
        PublicKey(
            r.id,
            r.owner_id,
            KeyType(r.type),
            bytes(r.public),
            KeyStatus(r.status),
            Period(r.valid_from, r.valid_until) if r.valid_from else None,
        )
        for r in await rows(PublicKeyRow)
    ]
    webhooks = [
        Webhook(r.id, r.owner_id, r.url, r.secret_ref, r.content) for r in await rows(WebhookRow)
    ]
    return Directory.build(
        jurisdictions, organisations, roles, contacts, assignments, keys, webhooks
    ), revision


def _translations(text: str | None) -> Translations:
    """The stored JSON object back as pairs, in the order the file wrote them."""
    return tuple(json.loads(text).items()) if text else ()


def _translations_doc(pairs: Translations) -> str | None:
    return json.dumps(dict(pairs), ensure_ascii=False) if pairs else None


def _period(item: dict[str, str | None]) -> Period:
    start = datetime.fromisoformat(str(item["from"]))
    until = item.get("until")
    end = datetime.fromisoformat(until) if until else None
    return Period(start, end)


async def _revision(conn: AsyncConnection) -> int:
    value = (await conn.execute(select(func.max(_t(DirectoryRevisionRow).c.revision)))).scalar()
    return int(value or 0)


async def current_revision(engine: AsyncEngine) -> int:
    async with connection(engine, message="database unreachable") as conn:
        return await _revision(conn)


async def replace_directory(
    engine: AsyncEngine,
    directory: Directory,
    *,
    content_hash: str,
    summary: str,
    actor: str,
    now: datetime,
    event_for: Callable[[int], AuditEvent] | None = None,
) -> int:
    """Replace the stored directory with ``directory`` atomically; returns the new revision."""
    async with transaction(engine, message="database unreachable") as conn:
        revision = await replace_in(
            conn, directory, content_hash=content_hash, summary=summary, actor=actor, now=now
        )
        if event_for is not None:
            await audit_repo.append(conn, [event_for(revision)])
        return revision


async def replace_in(
    conn: AsyncConnection,
    directory: Directory,
    *,
    content_hash: str,
    summary: str,
    actor: str,
    now: datetime,
) -> int:
    """``replace_directory`` inside the caller's transaction (enrolment approves in one)."""
    for cls in DIRECTORY_TABLES:
        await conn.execute(delete(_t(cls)))
    for cls, values in _rows(directory):
        if values:
            await conn.execute(insert(_t(cls)), values)
    result = await conn.execute(
        insert(_t(DirectoryRevisionRow)).values(
            applied_at=now,
            content_hash=content_hash,
            summary=summary[:300],
            actor=actor[:128],
        )
    )
    key = result.inserted_primary_key
    if key is None:
        raise StoreUnavailable("the database did not return the new revision")
    return int(key[0])


def _rows(d: Directory) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Each directory table with the rows that hold ``d``, in the order they are inserted."""
    return [
        (JurisdictionRow, [_jurisdiction_row(j) for j in d.jurisdictions.values()]),
        (OrganisationRow, [_organisation_row(o) for o in d.organisations.values()]),
        (RoleRow, [_role_row(r) for r in d.roles.values()]),
        (ContactRow, [_contact_row(c) for c in d.contacts.values()]),
        (AssignmentRow, [_assignment_row(a) for a in d.assignments]),
        (PublicKeyRow, [_key_row(k) for k in d.keys.values()]),
        (WebhookRow, [_webhook_row(w) for w in d.webhooks.values()]),
    ]


def _jurisdiction_row(j: Jurisdiction) -> dict[str, Any]:
    return {
        "id": j.id,
        "name": j.name,
        "level": j.level,
        "parent_id": j.parent,
        "translations": _translations_doc(j.names),
    }


def _organisation_row(o: Organisation) -> dict[str, Any]:
    return {
        "id": o.id,
        "name": o.name,
        "kind": o.kind,
        "jurisdiction_id": o.jurisdiction,
        "translations": _translations_doc(o.names),
    }


def _role_row(r: Role) -> dict[str, Any]:
    return {
        "id": r.id,
        "organisation_id": r.organisation,
        "kind": r.kind,
        "title": r.title,
        "translations": _translations_doc(r.titles),
    }


def _contact_row(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "organisation_id": c.organisation,
        "email": c.email,
        "language": c.language,
    }


def _assignment_row(a: Assignment) -> dict[str, Any]:
    return {
        "role_id": a.role,
        "contact_id": a.contact,
        "kind": a.kind.value,
        "valid_from": a.period.start,
        "valid_until": a.period.end,
        "absences": json.dumps([_period_doc(p) for p in a.absences]),
    }


def _period_doc(p: Period) -> dict[str, str | None]:
    return {"from": p.start.isoformat(), "until": p.end.isoformat() if p.end else None}


def _key_row(k: PublicKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "owner_id": k.owner,
        "type": k.type.value,
        "public": k.public,
        "status": k.status.value,
        "valid_from": k.valid.start if k.valid else None,
        "valid_until": k.valid.end if k.valid else None,
    }


def _webhook_row(w: Webhook) -> dict[str, Any]:
    return {
        "id": w.id,
        "owner_id": w.owner,
        "url": w.url,
        "secret_ref": w.secret_ref,
        "content": w.content,
    }
