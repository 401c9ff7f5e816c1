"""Apply a directory file: validate it whole, show what changes, swap it in atomically."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from broker.audit.events import AuditEvent
from broker.directory.load import load_directory_file
from broker.directory.present import DirectoryDiff, diff
from broker.domain.directory import Directory
from broker.store import Database
from broker.store.directory_repo import load_directory, replace_directory


def key_bindings(old: Directory, new: Directory) -> list[dict[str, str]]:
    """The keys of ``new`` that ``old`` did not have, or had with another owner, key or status."""
    return [
        {
            "id": key.id,
            "owner": key.owner,
            "type": key.type.value,
            "fingerprint": hashlib.sha256(key.public).hexdigest(),
            "status": key.status.value,
        }
        for key in sorted(new.keys.values(), key=lambda k: k.id)
        if old.keys.get(key.id) != key
    ]


@dataclass(frozen=True)
class ApplyResult:
    diff: DirectoryDiff
    revision: int  # the revision now in force (unchanged when nothing was applied)
    applied: bool
    warnings: tuple[str, ...] = ()  # what the change would break (``warn``); refused unless forced


Warn = Callable[[Directory, Directory], list[str]]


async def apply_directory_file(
    engine: Database,
    path: Path,
    *,
    actor: str,
    now: datetime,
    max_bytes: int,
    dry_run: bool = False,
    warn: Warn | None = None,
    force: bool = False,
) -> ApplyResult:
    """Validate ``path`` and replace the stored directory with it.

    Raises ``DirectoryFileError`` (nothing changed) when the file is refused. An unchanged
    directory records no new revision. ``warn(old, new)`` names what the change would break;
    with any warning, nothing is applied unless ``force``.
    """
    new, _ = await asyncio.to_thread(load_directory_file, path, max_bytes=max_bytes)
    old, revision = await load_directory(engine)
    changes = diff(old, new)
    warnings = tuple(warn(old, new)) if warn is not None and revision > 0 else ()
    if dry_run or (changes.empty and revision > 0) or (warnings and not force):
        return ApplyResult(changes, revision, applied=False, warnings=warnings)
    content_hash = hashlib.sha256(await asyncio.to_thread(path.read_bytes)).hexdigest()

    def event(revision: int) -> AuditEvent:
        return AuditEvent(
            at=now,
            actor=actor,
            action="directory.applied",
            object=f"directory:{revision}",
            details={
                "content_hash": content_hash,
                "summary": changes.summary(),
                "changes": changes.lines()[:50],
                # Key transparency: every binding that is new or changed, so an agency watching
                # the log sees each key ever bound to its name (`liaison keys monitor`).
                "keys": key_bindings(old, new),
                # Applied with --force over these: the record says who overrode what.
                **({"forced_over": list(warnings)[:50]} if warnings else {}),
            },
        )

    revision = await replace_directory(
        engine,
        new,
        content_hash=content_hash,
        summary=changes.summary(),
        actor=actor,
        now=now,
        event_for=event,
    )
    return ApplyResult(changes, revision, applied=True, warnings=warnings)
