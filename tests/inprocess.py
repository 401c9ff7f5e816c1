"""Set-up done in the test's own process, where a ``liaison`` start-up is not what is tested.

Each ``liaison`` run is a fresh interpreter that loads the store's libraries (a second or more
of CPU, two workers sharing two cores); a test that needs a directory applied, a key pair or
the dead letters only as the ground for what it checks gets them here, through the same
settings and service functions the commands use. The commands a test is about stay real
``liaison`` runs (``tests.support.run_cli``).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.config import Settings, load_settings, resolved_database_url
from broker.crypto.keys import generate, write_private_key
from broker.service.dead_letters import dead_letters
from broker.service.directory import apply_directory_file
from broker.store import Database, audit_repo
from broker.store.engine import create_engine, migrate


async def _store(data: Path, database_url: str) -> tuple[Settings, Database]:
    """What ``open_store`` gives a command run with ``LIAISON_DATABASE_URL=database_url``."""
    environ = {**os.environ, "LIAISON_DATABASE_URL": database_url}
    settings = load_settings(data, environ)
    engine = create_engine(resolved_database_url(settings, environ))
    await migrate(engine)
    return settings, engine


async def apply_directory(data: Path, database_url: str, path: Path | None = None) -> int:
    """``liaison directory apply PATH --data DATA`` (default: DATA/directory.yaml) on a store
    with no directory yet, where the command has nothing to warn of: the revision applied."""
    settings, engine = await _store(data, database_url)
    try:
        result = await apply_directory_file(
            engine,
            path or data / "directory.yaml",
            actor=f"operator:{getpass.getuser()}",
            now=datetime.now(UTC),
            max_bytes=settings.limits.max_directory_bytes,
        )
    finally:
        await engine.dispose()
    assert result.applied and not result.warnings, result.warnings
    return result.revision


def keygen(kind: str, owner: str, out: Path) -> dict[str, str]:
    """``liaison keygen --type KIND --owner OWNER --out OUT``: the directory entry it prints."""
    assert not out.exists()  # the command refuses to overwrite a key
    pair = generate(kind)
    write_private_key(out, pair)
    return {"id": pair.key_id(owner), "type": pair.type, "public": pair.public_b64}


async def dead_letter_ids(database_url: str) -> list[int]:
    """The ids ``liaison outbox list`` would show, read straight from the store."""
    engine = create_engine(database_url)
    try:
        return [letter.id for letter in await dead_letters(engine)]
    finally:
        await engine.dispose()


async def audit_events(database_url: str) -> list[dict[str, Any]]:
    """The audit log's events, as ``liaison audit export`` lists them after its header (the
    same stored bodies, less the ``audit.exported`` event an export adds first)."""
    engine = create_engine(database_url)
    try:
        return [json.loads(body) async for body in audit_repo.all_bodies(engine)]
    finally:
        await engine.dispose()


async def until_audited(database_url: str, action: str, seconds: float = 30) -> None:
    """Wait for the broker to record ``action`` (read from the store, not via ``liaison audit
    export``): a test then runs the command it checks once, not once per second of waiting."""
    deadline = time.monotonic() + seconds
    while action not in [e["action"] for e in await audit_events(database_url)]:
        assert time.monotonic() < deadline, f"no {action} in the audit log after {seconds} s"
        await asyncio.sleep(0.5)
