"""deploy/OPERATIONS.md's procedures, performed as written: a restore from a backup into a fresh
data directory (SQLite and PostgreSQL), and an upgrade across a schema migration.

Each test plays the operator: a real `liaison serve` makes the data, the backup is taken with the
tools the guide names (`sqlite3 .backup`, `pg_dump`, `tar`), the original is destroyed, and the
restored copy must hold the same audit log under the same checkpoint key (`liaison audit
verify --checkpoint-key`) and serve again.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text

from adapters.client.sender import SenderClient
from broker.crypto.keys import read_private_key
from broker.store.engine import MIGRATIONS, create_engine
from tests.conftest import fresh_pg_database
from tests.inprocess import apply_directory
from tests.support import run_cli, serve_process

EXAMPLE = json.loads(
    (
        Path(__file__).resolve().parents[2] / "policies/examples/returnee-repatriation.json"
    ).read_text()
)
CHECKPOINTS = {"LIAISON_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "1"}
PREVIOUS_REVISION = "0004"  # the schema before the newest migration (0005: the outbox)


def _ok(*args: str | Path, env: dict[str, str] | None = None) -> str:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _sh(*args: str | Path) -> None:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


async def _post(url: str, data: Path) -> str:
    pair = read_private_key(data / "keys" / "mk-mvr.pem")
    async with SenderClient.from_pem(url, pair.pem(), pair.key_id("mk-mvr"), retries=0) as client:
        return str((await client.post_notice(EXAMPLE)).body["id"])


def _export(data: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """`liaison audit export --data` to ``out``; its header (the signed checkpoints)."""
    _ok("audit", "export", "--data", data, "--out", out, env=env)
    header: dict[str, Any] = json.loads(out.read_text().splitlines()[0])
    return header


def _verified(export: Path, key: str) -> str:
    """`liaison audit verify` with the checkpoint key pinned from before the backup."""
    return _ok("audit", "verify", export, "--checkpoint-key", key)


def _events(export: Path) -> list[str]:
    return export.read_text().splitlines()[1:]


def _libpq(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql"))


async def _make_data(data: Path, env: dict[str, str]) -> list[str]:
    with serve_process(data, env={**env, **CHECKPOINTS}) as (_, url):
        posted = [await _post(url, data), await _post(url, data)]
        await asyncio.sleep(2.5)  # at least one checkpoint signed over them
    return posted


def _kek(data: Path) -> Path:
    """The escrow KEK file that liaison.toml names (kept outside the data directory)."""
    keys = tomllib.loads((data / "liaison.toml").read_text())["keys"]
    return Path(str(keys["escrow_kek"]).removeprefix("file:"))


def _back_up(data: Path, backup: Path, database: str | None) -> None:
    """OPERATIONS.md, "Backups": the store, the data directory without it, the KEK apart."""
    backup.mkdir(mode=0o700)
    if database is None:
        _sh("sqlite3", data / "liaison.db", f".backup '{backup / 'liaison.db'}'")
    else:
        _sh("pg_dump", "--format=custom", "--no-owner", "--file", backup / "liaison.dump", database)
    _sh("tar", "-C", data, "--exclude=liaison.db*", "-czf", backup / "data.tar.gz", ".")
    shutil.copy(_kek(data), backup / "escrow.kek")


def _restore(backup: Path, fresh: Path, database: str | None) -> None:
    """OPERATIONS.md, "Restore": a fresh directory, the files, the store, the KEK, its path."""
    fresh.mkdir(mode=0o700)
    _sh("tar", "-C", fresh, "-xzf", backup / "data.tar.gz")
    if database is None:
        shutil.copy(backup / "liaison.db", fresh / "liaison.db")
        (fresh / "liaison.db").chmod(0o600)
    else:
        _sh("pg_restore", "--exit-on-error", "--no-owner", "--dbname", database,
            backup / "liaison.dump")  # fmt: skip
    kek = fresh.with_name(fresh.name + ".kek")
    shutil.copy(backup / "escrow.kek", kek)
    kek.chmod(0o600)
    toml = fresh / "liaison.toml"
    lines = [
        f'escrow_kek = "file:{kek}"' if line.startswith("escrow_kek = ") else line
        for line in toml.read_text().splitlines()
    ]
    toml.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_restore_from_a_backup_into_a_fresh_data_directory(
    demo_dir: Path, tmp_path: Path, backend: str
) -> None:
    async with fresh_pg_database() as source, fresh_pg_database() as target:
        if backend == "sqlite":
            source_env: dict[str, str] = {}
            target_env: dict[str, str] = {}
            dump_from = restore_to = None
        else:
            source_env, target_env = (
                {"LIAISON_DATABASE_URL": source},
                {"LIAISON_DATABASE_URL": target},
            )
            dump_from, restore_to = _libpq(source), _libpq(target)
            await apply_directory(demo_dir, source)  # set-up: the demo's store has it already
        posted = await _make_data(demo_dir, source_env)
        before = _export(demo_dir, tmp_path / "before.jsonl", source_env)
        assert before["checkpoints"], "no checkpoint was signed before the backup"
        key = before["public_key"]
        _back_up(demo_dir, tmp_path / "backup", dump_from)
        shutil.rmtree(demo_dir)  # the disaster: the host and its data directory are gone

        fresh = tmp_path / "restored"
        _restore(tmp_path / "backup", fresh, restore_to)
        after = tmp_path / "after.jsonl"
        _export(fresh, after, target_env)
        assert _verified(after, key).startswith("OK: ")
        assert _events(after)[: len(_events(tmp_path / "before.jsonl"))] == _events(
            tmp_path / "before.jsonl"
        )
        with serve_process(fresh, env={**target_env, **CHECKPOINTS}) as (_, url):
            newer = await _post(url, fresh)  # the restored broker accepts and signs again
            status = run_cli("status", posted[0], "--data", fresh, "--as", "mk-mvr", "--url", url)
            await asyncio.sleep(2.5)
        assert status.returncode == 0, status.stderr
        assert newer not in posted
        _export(fresh, tmp_path / "later.jsonl", target_env)
        assert _verified(tmp_path / "later.jsonl", key).startswith("OK: ")


async def _to_revision(url: str, revision: str) -> None:
    """Put a store's schema at ``revision`` (alembic, the tool the broker migrates with)."""

    def downgrade(conn: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, revision)

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
    finally:
        await engine.dispose()


async def _schema(url: str) -> tuple[str, set[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            version = (
                await conn.execute(text("select version_num from alembic_version"))
            ).scalar_one()
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            return str(version), tables
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_the_current_broker_upgrades_a_store_of_the_previous_schema_in_place(
    demo_dir: Path, tmp_path: Path, backend: str
) -> None:
    """A store left at the previous revision, with notices and a signed log, is upgraded in place
    by `liaison serve` (backup first, as OPERATIONS.md says); the log still verifies."""
    async with fresh_pg_database("postgresql+asyncpg") as pg:
        if backend == "sqlite":
            env: dict[str, str] = {}
            url = f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
        else:
            env, url = {"LIAISON_DATABASE_URL": pg}, pg
            await apply_directory(demo_dir, pg)  # set-up: the demo's store has it already
        posted = await _make_data(demo_dir, env)
        before = _export(demo_dir, tmp_path / "before.jsonl", env)
        key = before["public_key"]
        await _to_revision(url, PREVIOUS_REVISION)  # the store as the previous release left it
        version, tables = await _schema(url)
        assert version == PREVIOUS_REVISION and "outbox" not in tables and "notice" in tables
        with serve_process(demo_dir, env={**env, **CHECKPOINTS}) as (_, broker):
            await _post(broker, demo_dir)  # it writes the newest table: the upgrade ran
            status = run_cli(
                "status", posted[0], "--data", demo_dir, "--as", "mk-mvr", "--url", broker
            )
            await asyncio.sleep(2.5)
        assert status.returncode == 0, status.stderr
        version, tables = await _schema(url)
        assert version == "0013_relay" and "enrolment_code" in tables
        _export(demo_dir, tmp_path / "after.jsonl", env)
        assert _verified(tmp_path / "after.jsonl", key).startswith("OK: ")
        assert _events(tmp_path / "after.jsonl")[: len(_events(tmp_path / "before.jsonl"))] == (
            _events(tmp_path / "before.jsonl")
        )
