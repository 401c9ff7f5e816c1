"""The broker's in-memory view: the policy set and directory snapshot in force, swapped whole.

Readers take ``state.view`` once per request and use that object throughout, so a reload in the
middle of a request cannot mix an old directory with a new policy set. Building a view (parsing
the Cedar entity graph) is CPU work and runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.audit.events import AuditEvent
from broker.clock import Clock, SystemClock
from broker.config import Limits
from broker.domain.directory import Directory
from broker.errors import PolicyFileError
from broker.logs import get_logger
from broker.policy.decide import Authorizer
from broker.policy.load import PolicySet, load_policies
from broker.store import Database, audit_repo
from broker.store.directory_repo import current_revision, load_directory

log = get_logger("liaison.state")


@dataclass(frozen=True)
class View:
    policies: PolicySet
    directory: Directory
    directory_revision: int
    authorizer: Authorizer


class BrokerState:
    def __init__(
        self, engine: Database, policies_dir: Path, limits: Limits, clock: Clock | None = None
    ) -> None:
        self.engine = engine
        self.policies_dir = policies_dir
        self.limits = limits
        self.clock = clock or SystemClock()
        self._view: View | None = None
        self._lock = asyncio.Lock()
        # Called after a new directory is in force (e.g. live streams re-check their tokens).
        self.on_directory_change: list[Callable[[], None]] = []

    @property
    def view(self) -> View:
        if self._view is None:
            raise RuntimeError("broker state used before it was loaded")
        return self._view

    @property
    def loaded(self) -> bool:
        return self._view is not None

    async def load(self) -> View:
        """Load policies and directory; raises PolicyFileError on an invalid policy set."""
        async with self._lock:
            policies = await self._read_policies_audited()
            directory, revision = await load_directory(self.engine)
            self._view = await asyncio.to_thread(_build, policies, directory, revision)
            return self._view

    async def _read_policies_audited(self) -> PolicySet:
        """Load the policy set; its loading, or its refusal with every reason, is audited."""
        now = self.clock.now()
        try:
            policies = await asyncio.to_thread(self._read_policies)
        except PolicyFileError as e:
            await audit_repo.append_events(
                self.engine,
                [
                    AuditEvent(
                        at=now,
                        actor="broker",
                        action="policy.refused",
                        object="policy:-",
                        outcome="refused",
                        reason=e.code,
                        details={"problems": [str(p) for p in e.problems][:100]},
                    )
                ],
            )
            raise
        await audit_repo.append_events(
            self.engine,
            [
                AuditEvent(
                    at=now,
                    actor="broker",
                    action="policy.loaded",
                    object=f"policy:{policies.hash}",
                    details={"files": list(policies.files), "channels": sorted(policies.channels)},
                )
            ],
        )
        return policies

    def _read_policies(self) -> PolicySet:
        return load_policies(
            self.policies_dir,
            max_file_bytes=self.limits.max_policy_file_bytes,
            max_files=self.limits.max_policy_files,
        )

    async def reload_policies(self) -> View:
        """Validate the policy directory again and swap it in; on any problem keep the old set."""
        async with self._lock:
            policies = await self._read_policies_audited()
            old = self.view
            self._view = await asyncio.to_thread(
                _build, policies, old.directory, old.directory_revision
            )
            log.info("policy_reloaded", policy_hash=policies.hash)
            return self._view

    async def refresh_directory(self) -> bool:
        """Pick up a directory applied by `liaison directory apply`; True when it changed."""
        revision = await current_revision(self.engine)
        if self._view is not None and revision == self._view.directory_revision:
            return False
        async with self._lock:
            directory, revision = await load_directory(self.engine)
            old = self.view
            self._view = await asyncio.to_thread(_build, old.policies, directory, revision)
            log.info("directory_refreshed", revision=revision)
        for listener in self.on_directory_change:
            listener()
        return True


def _build(policies: PolicySet, directory: Directory, revision: int) -> View:
    return View(policies, directory, revision, Authorizer(policies, directory))
