"""A client's pinned directory root, and what it has accepted since (rollback protection).

The root is given at enrolment (``PinnedRoot.from_file``) and never taken from the broker. At each
refresh the client asks the broker for root versions N+1, N+2, ... (each must be signed by the one
before it and by itself) and for the key bindings, and checks them with ``broker.trust.core``.
With a ``state`` file, the newest accepted root and the highest bindings version survive the
process, so a broker that serves an older signed file is refused next time too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tuf.api.metadata import Metadata, Root

from broker.errors import TrustRefused
from broker.trust import core

Fetch = Callable[[str], Awaitable[bytes | None]]  # path -> body, None when the broker has none


@dataclass
class PinnedRoot:
    root: bytes  # the newest root this client accepted, starting from the pinned one
    state: Path | None = None
    bindings_version: int = 0
    _trusted: Metadata[Root] | None = field(default=None, repr=False)

    @classmethod
    def from_file(cls, path: Path, *, state: Path | None = None) -> PinnedRoot:
        try:
            pinned = cls(path.read_bytes(), state)
        except OSError as e:
            raise TrustRefused(f"cannot read the pinned root {path}: {e.strerror}") from e
        pinned._load_state()
        return pinned

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the pinned root's signed part: what an administrator reads out at enrolment."""
        return fingerprint(self.root)

    async def refresh(self, fetch: Fetch, now: datetime) -> core.KeyBindings:
        """Walk root rotations, then fetch and verify the key bindings against the final root."""
        trusted = core.parse_root(self.root)
        updates: list[bytes] = []
        for _ in range(core.MAX_ROOT_ROTATIONS):
            data = await fetch(f"/v1/trust/{trusted.signed.version + len(updates) + 1}.root.json")
            if data is None:
                break
            updates.append(data)
        root = core.final_root(self.root, updates, now)
        data = await fetch("/v1/trust/bindings.json")
        if data is None:
            raise TrustRefused("the broker serves no signed key bindings")
        bindings = core.verify_bindings(root, data, now=now, min_version=self.bindings_version)
        if updates:
            self.root = updates[-1]
        self.bindings_version = bindings.version
        self._save_state()
        return bindings

    def _load_state(self) -> None:
        if self.state is None or not self.state.exists():
            return
        try:
            saved = json.loads(self.state.read_bytes())
            root = base64.b64decode(saved["root"])
            version = int(saved["bindings_version"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TrustRefused(f"the trust state {self.state} is unreadable") from e
        # The saved root must descend from the pinned one: it was accepted by walking from it.
        if core.parse_root(root).signed.version >= core.parse_root(self.root).signed.version:
            self.root = root
        self.bindings_version = version

    def _save_state(self) -> None:
        if self.state is None:
            return
        saved = {
            "root": base64.b64encode(self.root).decode(),
            "bindings_version": self.bindings_version,
        }
        tmp = self.state.with_suffix(self.state.suffix + ".tmp")
        tmp.write_text(json.dumps(saved), encoding="utf-8")
        tmp.replace(self.state)


def fingerprint(root: bytes) -> str:
    return hashlib.sha256(core.parse_root(root).signed_bytes).hexdigest()
