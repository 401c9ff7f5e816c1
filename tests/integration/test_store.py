"""The directory in a real database: SQLite file and this machine's PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import broker.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from broker.directory.load import load_directory_file
from broker.directory.present import to_document
from broker.errors import DirectoryFileError
from broker.service.directory import apply_directory_file
from broker.store.directory_repo import load_directory
from broker.store.engine import create_engine, migrate, schema_state
from tests.conftest import DEMO_DIRECTORY, NOW


async def test_migrations_reach_head_and_match_the_models(engine: AsyncEngine) -> None:
    current, head = await schema_state(engine)
    assert current == head == "0013_relay"

    def differences(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), SQLModel.metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_migrating_twice_changes_nothing(engine: AsyncEngine) -> None:
    await migrate(engine)
    assert (await schema_state(engine))[0] == "0013_relay"


async def test_sqlite_is_durable_by_default(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
    await engine.dispose()


async def test_apply_stores_the_whole_demo_directory(engine: AsyncEngine) -> None:
    result = await apply_directory_file(
        engine, DEMO_DIRECTORY, actor="test", now=NOW, max_bytes=10_000_000
    )
    assert result.applied and result.revision == 1
    stored, revision = await load_directory(engine)
    expected, _ = load_directory_file(DEMO_DIRECTORY, max_bytes=10_000_000)
    assert revision == 1
    assert unordered(to_document(stored)) == unordered(to_document(expected))


def unordered(document: dict[str, object]) -> dict[str, object]:
    """A directory document with each section as a set of entries: a table scan need not give
    back the file's order (PostgreSQL does not, once names carry their translations)."""
    return {k: sorted(map(repr, v)) if isinstance(v, list) else v for k, v in document.items()}


async def test_applying_the_same_file_again_is_a_no_op(engine: AsyncEngine) -> None:
    await apply_directory_file(engine, DEMO_DIRECTORY, actor="test", now=NOW, max_bytes=10_000_000)
    again = await apply_directory_file(
        engine, DEMO_DIRECTORY, actor="test", now=NOW, max_bytes=10_000_000
    )
    assert not again.applied and again.diff.empty and again.revision == 1


async def test_a_refused_file_changes_nothing(engine: AsyncEngine, tmp_path: Path) -> None:
    await apply_directory_file(engine, DEMO_DIRECTORY, actor="test", now=NOW, max_bytes=10_000_000)
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        DEMO_DIRECTORY.read_text().replace("parent: mk-northeast}", "parent: mk-nowhere}", 1)
    )
    with pytest.raises(DirectoryFileError) as caught:
        await apply_directory_file(engine, broken, actor="test", now=NOW, max_bytes=10_000_000)
    assert "unknown parent jurisdiction 'mk-nowhere'" in str(caught.value)
    stored, revision = await load_directory(engine)
    assert revision == 1 and "mk-kumanovo" in stored.jurisdictions


async def test_a_change_is_a_new_revision_with_a_diff(engine: AsyncEngine, tmp_path: Path) -> None:
    await apply_directory_file(engine, DEMO_DIRECTORY, actor="test", now=NOW, max_bytes=10_000_000)
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        DEMO_DIRECTORY.read_text()
        .replace("en: Municipality of Kumanovo,", "en: Opština Kumanovo,")
        .replace("mk: Општина Куманово}", "mk: Општина Куманово (Kumanovo)}")
        # (a name by language: the diff names each language that changed)
    )
    result = await apply_directory_file(
        engine, changed, actor="test", now=NOW, max_bytes=10_000_000
    )
    assert result.revision == 2
    assert result.diff.lines() == [  # the entry changed, and what changed inside it
        "~ organisation mk-kumanovo.municipality",
        "    name.en: 'Municipality of Kumanovo' -> 'Opština Kumanovo'",
        "    name.mk: 'Општина Куманово' -> 'Општина Куманово (Kumanovo)'",
    ]
    stored, _ = await load_directory(engine)
    assert stored.organisations["mk-kumanovo.municipality"].name == "Opština Kumanovo"
