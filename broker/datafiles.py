"""File modes of a data directory: the broker's own user reads it, no one else.

Attacker: another user or process on the broker host (THREATS.md) reading the SQLite file
(ciphertexts, wraps, the audit log, nonces), its write-ahead log, or the private keys.

Invariants:
- ``private_umask`` makes every file the process creates from then on (the database, its
  ``-wal`` and ``-shm``, keys, pid files) mode 0600 and every directory 0700; ``liaison init``
  and ``liaison serve`` call it first.
- ``tighten`` sets the data directory to 0700 and the SQLite files that exist to 0600, so a data
  directory made before this held keeps no wider mode. A file the process cannot change (a
  read-only volume) is reported, not fatal.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE, FILE_MODE = 0o700, 0o600
SQLITE_FILES = ("liaison.db", "liaison.db-wal", "liaison.db-shm", "liaison.db-journal")


def private_umask() -> None:
    """From now on, files and directories this process creates are its user's only."""
    os.umask(PRIVATE_UMASK)


def tighten(data_dir: Path) -> list[str]:
    """Data directory 0700, its SQLite files 0600; the paths that could not be changed."""
    failed: list[str] = []
    targets = [(data_dir, DIR_MODE)] + [(data_dir / n, FILE_MODE) for n in SQLITE_FILES]
    for path, mode in targets:
        try:
            if path.exists() and (path.stat().st_mode & 0o777) != mode:
                path.chmod(mode)
        except OSError:
            failed.append(str(path))
    return failed
