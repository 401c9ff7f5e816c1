"""Building the ``liaison`` parser loads no heavy library: each command imports what it needs.

Every ``liaison`` run builds the whole parser, so a library imported at the top of any module
under ``broker/cli/`` is paid by every command (and by every test that runs one). The parser
is built in a fresh interpreter and ``sys.modules`` is checked afterwards; the check is also
played with a deliberate import first, so that it is seen to fail. Two commands are run the same
way: ``keygen`` loads no store, and a command that reads a store already at the newest schema
loads neither the server, the policy engine, structlog nor alembic. A guard, not a timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from broker.cli.operator import keys
from broker.crypto import purpose_keys
from broker.store.engine import MIGRATIONS, create_engine, migrate, newest_revision

# Libraries (and broker layers) that only the commands that use them may load.
HEAVY = (
    "aiohttp",
    "alembic",
    "cedarpy",
    "cryptography",
    "jsonschema",
    "lxml",
    "pydantic",
    "securesystemslib",
    "signxml",
    "sqlalchemy",
    "sqlmodel",
    "structlog",
    "tuf",
    "yaml",
    "broker.app",
    "broker.http",
    "broker.service",
    "broker.store",
)

CHECK = """
import contextlib, io, json, sys
{before}
from broker.cli.main import build_parser, main
build_parser()
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    assert main({argv!r}) == 0
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + "." for h in heavy)))))
"""


def _loaded(
    before: str = "",
    argv: tuple[str, ...] = ("--help",),
    heavy: tuple[str, ...] = HEAVY,
    env: dict[str, str] | None = None,
) -> list[str]:
    code = CHECK.format(before=before, heavy=heavy, argv=list(argv))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    ).stdout
    loaded: list[str] = json.loads(out)
    return loaded


def test_building_the_parser_and_help_load_no_heavy_library() -> None:
    assert _loaded() == []


def test_the_check_sees_a_heavy_import() -> None:
    assert "sqlalchemy" in _loaded("import sqlalchemy")
    assert "broker.service.dead_letters" in _loaded("import broker.service.dead_letters")


def test_keygen_loads_the_key_library_and_no_store(tmp_path: Path) -> None:
    loaded = _loaded(argv=("keygen", "--type", "x25519", "--out", str(tmp_path / "k.pem")))
    assert (tmp_path / "k.pem").exists()
    assert [m for m in loaded if not m.startswith("cryptography")] == []


# Not needed to read or change a store at the newest schema: the server, the HTTP layer, the
# policy engine, logging, the migration tool.
NOT_FOR_THE_STORE = (
    "aiohttp",
    "alembic",
    "cedarpy",
    "lxml",
    "signxml",
    "structlog",
    "tuf",
    "broker.app",
    "broker.http",
    "broker.policy",
    "sqlalchemy",  # must be there: the command did read the store
)


def test_a_command_that_reads_the_store_loads_no_server_policy_engine_or_logging(
    tmp_path: Path,
) -> None:
    (tmp_path / "liaison.toml").write_text("")
    store = tmp_path / "liaison.db"
    asyncio.run(_migrated(f"sqlite+aiosqlite:///{store}"))
    argv = ("outbox", "list", "--data", str(tmp_path))
    env = {"LIAISON_DATABASE_URL": f"sqlite:///{store}"}
    loaded = _loaded(argv=argv, heavy=NOT_FOR_THE_STORE, env=env)
    assert {m.split(".")[0] for m in loaded} == {"sqlalchemy"}
    store.unlink()  # a new store: the same command needs alembic, and the check sees it
    assert "alembic" in {
        m.split(".")[0] for m in _loaded(argv=argv, heavy=NOT_FOR_THE_STORE, env=env)
    }
    assert store.exists()


async def _migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def test_the_newest_revision_read_without_alembic_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert newest_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_the_parsers_purposes_are_the_key_rings() -> None:
    assert keys.PURPOSES == purpose_keys.PURPOSES
