"""Commits to a SQLite file by any process, noticed: ``PRAGMA data_version``.

PostgreSQL tells every broker process of a commit by LISTEN/NOTIFY (``listener.py``); a SQLite
file has no server to do that. When several worker processes share one file, each watches it
on a connection of its own that never writes: SQLite changes that connection's
``data_version`` whenever any other connection, in this process or another, commits. The
watch reads it every ``interval`` seconds on a thread (a read can wait on a checkpoint's lock,
never the event loop) and returns when it changed; the caller then reads what was committed.

Invariants:
- the watch only reads a counter; it never holds a transaction open (``isolation_level=None``),
  so it does not keep old WAL frames alive nor block a checkpoint;
- a missed or coalesced change costs nothing: the caller reads everything above its position.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

BUSY_MS = 5000  # a read of the counter waits this long behind a checkpoint, then tries again


def sqlite_file(engine: AsyncEngine) -> Path | None:
    """The file of a SQLite engine; None for PostgreSQL or an in-memory database."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    if engine.url.database == ":memory:":
        return None
    return Path(engine.url.database)


class CommitWatch:
    """Waits for the next commit to a SQLite file by any connection."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None

    def _read(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_MS / 1000, isolation_level=None, check_same_thread=False
            )
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    async def changed(self) -> None:
        """Return once the file has changed since the last call (the first call returns at once)."""
        while True:
            try:
                version = await asyncio.to_thread(self._read)
            except sqlite3.Error:  # busy or briefly unreadable: look again next interval
                version = None
            if version is not None and version != self._version:
                self._version = version
                return
            await asyncio.sleep(self.interval)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
