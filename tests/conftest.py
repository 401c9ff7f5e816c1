"""Shared fixtures: real databases (a SQLite file, this machine's PostgreSQL), demo data, servers.

PostgreSQL tests run against ``LIAISON_TEST_POSTGRES_URL`` (default: the local server's ``test``
database). Each test gets a fresh database that is dropped afterwards. When the server is not
reachable the PostgreSQL half is skipped, unless ``LIAISON_REQUIRE_POSTGRES=1`` (as in CI), where
it fails instead, so that CI never passes by skipping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.service.setup import init_data_dir
from broker.store.engine import create_engine, migrate

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
DEMO_DIRECTORY = POLICIES / "demo" / "directory.yaml"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
PG_URL = os.environ.get("LIAISON_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(PG_URL, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


_PG_OK: bool | None = None


def pg_available() -> bool:
    """Probed once, in a thread of its own: callers may already be inside an event loop."""
    global _PG_OK
    if _PG_OK is None:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            _PG_OK = pool.submit(_pg_reachable).result()
    return _PG_OK


def require_pg() -> None:
    if not pg_available():
        if os.environ.get("LIAISON_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but not reachable at {PG_URL}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_pg_database(scheme: str = "postgresql") -> AsyncIterator[str]:
    """Create an empty PostgreSQL database for one test and drop it afterwards."""
    require_pg()
    name = f"liaison_t_{secrets.token_hex(6)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(PG_URL)._replace(scheme=scheme, path=f"/{name}"))
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The async URL of an empty database: a SQLite file, then this machine's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'liaison.db'}"
        return
    async with fresh_pg_database("postgresql+asyncpg") as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``database_url``'s empty database, migrated to the newest schema."""
    engine = create_engine(database_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo data directory (SQLite) built per session; tests copy it, never change it."""
    path = tmp_path_factory.mktemp("demo-template") / "data"
    asyncio.run(init_data_dir(path, demo=True, now=NOW, environ={}))
    return path


@pytest.fixture
def demo_dir(demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo data directory."""
    target = tmp_path / "demo"
    shutil.copytree(demo_template, target)
    return target


_FAULT_FIGURES: list[dict[str, Any]] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the template stores this test process made (intake_support.py)."""
    support = sys.modules.get("tests.integration.intake_support")
    for path in getattr(support, "SQLITE_TEMPLATES", {}).values():
        shutil.rmtree(path.parent, ignore_errors=True)
    for name in getattr(support, "PG_TEMPLATES", []):
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Fault tests hand their figures over in the teardown report (from xdist workers too)."""
    if report.when == "teardown":
        from tests.fault.figures import KEY

        _FAULT_FIGURES.extend(value for key, value in report.user_properties if key == KEY)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller prints the table
        return
    from tests.fault.figures import write_summary

    write_summary(terminalreporter, _FAULT_FIGURES)
