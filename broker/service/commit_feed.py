"""Live push when several processes share one SQLite file: every commit, read back by each.

With PostgreSQL, NOTIFY tells every process what committed (``Recipients.relay``). On SQLite
served by several worker processes, no process announces its own commits
(``Recipients(distributed=True)``); instead each process runs a ``CommitFeed``: on every change
of the file (``store/commit_watch.py``) it reads the deliveries above its position and hands
them to the same ``Publisher.publish`` the PostgreSQL catch-up uses.

Invariants:
- delivery ids are given out in commit order (``audit_repo.lock_head``; SQLite has one writer
  at a time), so "every delivery above the position" is exactly what committed since, in the
  order a stream must send it: no gap, no repeat, whichever process committed it;
- with nobody connected the position jumps to the newest id, but only if still nobody is
  connected after that read: a stream that subscribed meanwhile reads its backlog after
  subscribing, so it has everything up to that id from the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from broker.errors import LiaisonError
from broker.logs import get_logger
from broker.service.live import Publisher
from broker.service.push import Hub
from broker.state import BrokerState
from broker.store import deliveries_repo as repo

log = get_logger("liaison.feed")
PAGE = 500  # deliveries read per query; a larger tail takes several


class CommitFeed:
    def __init__(
        self,
        state: BrokerState,
        hub: Hub,
        publisher: Publisher,
        changed: Callable[[], Awaitable[None]],
    ) -> None:
        self.state = state
        self.hub = hub
        self.publisher = publisher
        self.changed = changed
        self.position = 0

    async def run(self) -> None:
        """Forever: wait for a commit, push what it added (a failed read is retried next time)."""
        self.position = await repo.last_delivery_id(self.state.engine)
        while True:
            await self.changed()
            try:
                await self.catch_up()
            except LiaisonError:  # the store failed: streams resume from it on reconnect
                log.warning("feed_read_failed", position=self.position)

    async def catch_up(self) -> None:
        """Push every delivery above the position to this process's connected contacts."""
        engine = self.state.engine
        while True:
            if not self.hub.connections:
                newest = await repo.last_delivery_id(engine)
                if not self.hub.connections:
                    self.position = max(self.position, newest)
                    return
            items = await repo.deliveries_since(engine, self.position, PAGE)
            if not items:
                return
            self.publisher.publish(items)
            self.position = items[-1].delivery_id
            if len(items) < PAGE:
                return
