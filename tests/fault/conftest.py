"""The fault suite's fixtures: each test adds what it tried; the run ends with one table.

`LIAISON_FAULT_SCALE=10 .venv/bin/python -m pytest tests/fault` is the long form; CI runs the
short form (scale 1) with the rest of the suite. The table (tests/fault/figures.py) also goes to
``tests/_artifacts/fault-figures.json``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import fresh_pg_database
from tests.fault import figures as figures_report
from tests.fault.harness import Figures
from tests.support import run_cli


@dataclass
class Backend:
    data: Path
    db_url: str  # for the checks, async driver
    env: dict[str, str]  # for the broker and the CLI


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, demo_dir: Path) -> AsyncIterator[Backend]:
    """The demo data on its SQLite file, then on a fresh database of this machine's PostgreSQL."""
    if request.param == "sqlite":
        yield Backend(demo_dir, f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}", {})
        return
    async with on_postgres(demo_dir) as pg:
        yield pg


@contextlib.asynccontextmanager
async def on_postgres(demo_dir: Path) -> AsyncIterator[Backend]:
    async with fresh_pg_database("postgresql+asyncpg") as url, on_postgres_at(demo_dir, url) as pg:
        yield pg


@contextlib.asynccontextmanager
async def on_postgres_at(demo_dir: Path, url: str) -> AsyncIterator[Backend]:
    """The demo directory applied to the empty PostgreSQL database at ``url``."""
    env = {"LIAISON_DATABASE_URL": url}
    applied = run_cli(
        "directory", "apply", demo_dir / "directory.yaml", "--data", demo_dir, env=env
    )
    assert applied.returncode == 0, applied.stderr
    yield Backend(demo_dir, url, env)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    record = Figures(request.node.name)
    yield record
    request.node.user_properties.append((figures_report.KEY, figures_report.as_record(record)))
