"""The fault suite's figures: each test adds what it tried; the run ends with one table.

`LIAISON_FAULT_SCALE=10 .venv/bin/python -m pytest tests/fault` is the long form; CI runs the
short form (scale 1) with the rest of the suite. The table also goes to
``tests/_artifacts/fault-figures.json``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import fresh_pg_database
from tests.fault.harness import SCALE, Figures
from tests.support import run_cli

_ALL: list[Figures] = []
ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"


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
    _ALL.append(record)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _ALL:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"fault suite figures (scale {SCALE})")
    write(f"{'test':62} {'ops':>5} {'ok':>5} {'fail':>5} {'unkn':>5} {'faults':>6} {'bad in':>7}")
    for f in _ALL:
        write(
            f"{f.name[:62]:62} {f.operations:>5} {f.outcomes['ok']:>5} {f.outcomes['failed']:>5} "
            f"{f.outcomes['unknown']:>5} {f.faults:>6} {f.bad_inputs:>7}"
        )
    total = {
        "operations": sum(f.operations for f in _ALL),
        "faults_injected": sum(f.faults for f in _ALL),
        "bad_inputs": sum(f.bad_inputs for f in _ALL),
        "lost": sum(f.lost for f in _ALL),
        "duplicated": sum(f.duplicated for f in _ALL),
        "leaked": sum(f.leaked for f in _ALL),
    }
    for f in _ALL:
        for what, seconds in f.recoveries:
            write(f"recovery: {f.name[:50]:50} {what:26} {seconds:7.2f} s")
    write(
        f"total: {total['operations']} operations, {total['faults_injected']} faults injected, "
        f"{total['bad_inputs']} bad inputs; notices lost {total['lost']}, duplicated "
        f"{total['duplicated']}, leaked {total['leaked']}"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fault-figures.json").write_text(
        json.dumps(
            {
                "scale": SCALE,
                "total": total,
                "tests": [
                    {
                        "name": f.name,
                        "operations": f.operations,
                        "outcomes": dict(f.outcomes),
                        "faults": f.faults,
                        "bad_inputs": f.bad_inputs,
                        "recoveries": [
                            {"what": what, "seconds": round(seconds, 3)}
                            for what, seconds in f.recoveries
                        ],
                    }
                    for f in _ALL
                ],
            },
            indent=2,
        )
    )
