"""Live push at scale: deliveries announced in commit order, decided in one batch, marked once.

Invariants:
- the hub receives deliveries in the order their transactions committed: announcements are
  queued synchronously, in the order commits are answered (group commit) or notified
  (PostgreSQL NOTIFY), and one publisher task takes them in that order; so a stream that sends
  what it receives, in order, sends in id order and its Last-Event-ID resumes with no gap;
- a connected contact receives an event only when policy lets them read that notice now: one
  Cedar batch decides for every connected recipient of the announced deliveries;
- "delivered" marks of many live streams share one transaction (group commit), with an audit
  event for each delivery marked;
- streams that open (or page on) together read their backlogs in one query
  (``BacklogReads``), each answer exactly the one-contact read.

Measured before (2,000 connected recipients of one broadcast): every stream read its delivery
from the store, asked Cedar on its own and committed its own mark: the last one had the notice
after about 20 s. See tests/bench/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from broker.audit.events import AuditEvent
from broker.errors import LiaisonError
from broker.logs import get_logger
from broker.service.push import Hub, PushEvent
from broker.service.rounds import Rounds, settle
from broker.state import BrokerState
from broker.store import Database
from broker.store import deliveries_repo as repo
from broker.store.deliveries_repo import InboxItem
from broker.store.group_writer import group_writer

log = get_logger("liaison.live")
STREAM_BACKLOG = 500  # deliveries replayed per read; a client far behind pages through the inbox


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def event_data(item: InboxItem) -> dict[str, Any]:
    """Metadata of one delivery, as pushed live and listed in the inbox: never contents."""
    return {
        "notice_id": item.notice_id,
        "channel": item.channel,
        "jurisdiction": item.jurisdiction,
        "severity": item.severity,
        "marking": item.marking,
        "exercise": item.exercise,
        "kind": item.kind,
        "status": item.status,
        "supersedes": item.supersedes,
        "sender": item.sender,
        "role": item.role,
        "state": item.state,
        "created_at": _time(item.created_at),
        "acknowledged_at": _time(item.acked_at),
    }


class Publisher:
    """Takes announcements (a committed notice, or delivery ids) in order; pushes to the hub."""

    def __init__(self, state: BrokerState, hub: Hub) -> None:
        self.state = state
        self.hub = hub
        self._rounds: Rounds[dict[str, Any]] = Rounds("live-publisher", self._round, 256)

    def enqueue(self, payload: dict[str, Any]) -> None:
        """Synchronous on purpose: the call order is the push order."""
        if self.hub.connections:  # nobody connected to this process: nothing to look up
            self._rounds.put(payload)

    async def close(self) -> None:
        await self._rounds.close()

    async def _round(self, payloads: list[dict[str, Any]]) -> None:
        try:
            self.publish(await self._items(payloads))
        except LiaisonError:  # the store failed: streams resume from the store on reconnect
            log.warning("push_failed", announcements=len(payloads))

    async def _items(self, payloads: list[dict[str, Any]]) -> list[InboxItem]:
        notices = [str(p["notice"]) for p in payloads if "notice" in p]
        ids = [int(i) for p in payloads for i in p.get("deliveries", [])]
        return await repo.deliveries_named(self.state.engine, notices, ids)

    def publish(self, items: Sequence[InboxItem]) -> int:
        """Push ``items`` (in id order) to connected contacts who may read them now."""
        items = [i for i in items if self.hub.streams_of(i.contact)]
        if not items:
            return 0
        view = self.state.view
        # Each delivery decided with every role the contact got the notice through here, as
        # the inbox decides (``Recipients.visible``): a policy on ``recipient_roles`` must not
        # let push show what a fetch then refuses.
        roles: dict[tuple[str, str], list[str]] = {}
        for i in items:
            roles.setdefault((i.contact, i.notice_id), []).append(i.role)
        decisions = view.authorizer.read_notices_for(
            [(i.contact, i.facts(), roles[(i.contact, i.notice_id)]) for i in items],
            self.state.clock.now(),
        )
        return self.hub.publish(
            [
                PushEvent(i.delivery_id, i.contact, event_data(i), i)
                for i, d in zip(items, decisions, strict=True)
                if d.allowed
            ]
        )


EventsFor = Callable[[list[int]], Sequence[AuditEvent]]
Mark = tuple[list[int], EventsFor, datetime, "asyncio.Future[None]"]


class DeliveredMarks:
    """Group commit of "delivered" marks: streams that mark together share one transaction."""

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        # On a SQLite file, a raw writer thread of its own: the marks hold the write lock for
        # the transaction's statements, not for the event loop's turns between them.
        self.writer = group_writer(state.engine)
        self._rounds: Rounds[Mark] = Rounds("delivered-marks", self._round, 512)

    async def mark(self, ids: list[int], now: datetime, events_for: EventsFor) -> None:
        if not ids:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rounds.put((ids, events_for, now, done))
        await done

    async def close(self) -> None:
        await self._rounds.close()
        await self.writer.close()

    async def _round(self, batch: list[Mark]) -> None:
        try:
            await self._commit(batch)
        except Exception as e:  # every waiter hears the store's failure, none is left hanging
            settle((done for *_, done in batch), e)
            return
        settle(done for *_, done in batch)

    async def _commit(self, batch: list[Mark]) -> None:
        def events_for(changed: list[int]) -> list[AuditEvent]:
            out: list[AuditEvent] = []
            claimed: set[int] = set()  # two streams of one contact: one event per delivery
            for ids, fn, _, _ in batch:
                wanted = set(ids) - claimed
                mine = [i for i in changed if i in wanted]
                claimed.update(mine)
                out += fn(mine)
            return out

        await self.writer.mark_delivered(
            [i for ids, _, _, _ in batch for i in ids],
            max(now for _, _, now, _ in batch),
            events_for,
        )


Start = tuple[str, int, "asyncio.Future[list[InboxItem]]"]


class BacklogReads:
    """Backlog reads of streams that open together, in one query (5,000 clients connecting
    after a restart read the store a few times, not 5,000 times)."""

    def __init__(self, db: Database, limit: int = STREAM_BACKLOG) -> None:
        self.db = db
        self.limit = limit
        self._rounds: Rounds[Start] = Rounds("backlog-reads", self._round, 1000)

    async def read(self, contact: str, after: int) -> list[InboxItem]:
        """The contact's deliveries above ``after``, oldest first, at most ``limit``."""
        done: asyncio.Future[list[InboxItem]] = asyncio.get_running_loop().create_future()
        self._rounds.put((contact, after, done))
        return await done

    async def close(self) -> None:
        await self._rounds.close()

    async def _round(self, batch: list[Start]) -> None:
        try:
            answers = await repo.deliveries_after_each(
                self.db, [(c, after) for c, after, _ in batch], self.limit
            )
        except Exception as e:  # every waiter hears the store's failure, none is left hanging
            for *_, done in batch:
                if not done.done():
                    done.set_exception(e)
            return
        for (*_, done), items in zip(batch, answers, strict=True):
            if not done.done():  # a stream closed while it waited
                done.set_result(items)
