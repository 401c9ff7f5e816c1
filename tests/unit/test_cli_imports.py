"""Building the ``liaison`` parser loads no heavy library: each command imports what it needs.

Every ``liaison`` run builds the whole parser, so a library imported at the top of any module
under ``broker/cli/`` is paid by every command (and by every test that runs one). The parser
is built in a fresh interpreter and ``sys.modules`` is checked afterwards; the check is also
played with a deliberate import first, so that it is seen to fail. A guard, not a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys

from broker.cli.operator import keys
from broker.crypto import purpose_keys

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
    main(["--help"])
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + "." for h in heavy)))))
"""


def _loaded(before: str = "") -> list[str]:
    code = CHECK.format(before=before, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded: list[str] = json.loads(out)
    return loaded


def test_building_the_parser_and_help_load_no_heavy_library() -> None:
    assert _loaded() == []


def test_the_check_sees_a_heavy_import() -> None:
    assert "sqlalchemy" in _loaded("import sqlalchemy")
    assert "broker.service.dead_letters" in _loaded("import broker.service.dead_letters")


def test_the_parsers_purposes_are_the_key_rings() -> None:
    assert keys.PURPOSES == purpose_keys.PURPOSES
