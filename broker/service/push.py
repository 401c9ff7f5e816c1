"""Live push: an in-process hub that fans delivery events out to connected recipients.

Each connection has a bounded mailbox: a list and, while its stream waits, one future. A reader
too slow to keep up is marked overflowed and disconnected (it resumes from its Last-Event-ID on
reconnect), so no client can make the broker grow memory. Events are metadata only; the
contents stay in the inbox, encrypted.

One timer for the whole hub ticks ``SLICES`` times per ``beat`` seconds, each tick knocking one
slice of the connections (so every stream sends a keep-alive and re-checks its token once per
beat, and the work is spread, not a storm): an idle connection holds no timer of its own.

The interface the commit path and a cross-process wake-up use: ``publish(events)`` (events in
commit order) and ``wake_all()`` (the directory changed: every stream re-checks now).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

SLICES = 10  # ticks per beat: each knocks the connections of one slice


@dataclass(frozen=True, slots=True)
class PushEvent:
    id: int  # the delivery id: increasing, so it orders and resumes a stream
    contact: str
    data: dict[str, Any]
    item: Any = None  # the store's InboxItem, for marking it delivered once sent


class Subscription:
    """One connection's mailbox. ``wait`` returns when there is mail, a beat, a wake-up, an
    overflow, or the deadline passed."""

    __slots__ = (
        "_limit",
        "_waiter",
        "_woken",
        "beat",
        "contact",
        "events",
        "overflowed",
        "slice",
        "task",
    )

    def __init__(self, contact: str, limit: int, task: asyncio.Task[Any] | None) -> None:
        self.contact = contact
        self.events: list[PushEvent] = []
        self.overflowed = False
        self.beat = False  # a heartbeat is due: a keep-alive (and a re-check)
        self.task = task  # the connection's handler, cancelled on shutdown
        self._limit = limit
        self.slice = 0  # which tick of a beat knocks it
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False  # knocked while not waiting: the next wait returns at once

    def put(self, event: PushEvent) -> bool:
        if len(self.events) >= self._limit:
            self.overflowed = True
            self._wake()
            return False
        self.events.append(event)
        self._wake()
        return True

    def knock(self, beat: bool = False) -> None:
        """Wake the stream to re-check its token; with ``beat``, to send a keep-alive too."""
        self.beat = self.beat or beat
        self._woken = True
        self._wake()

    def take(self) -> list[PushEvent]:
        events, self.events = self.events, []
        return events

    async def wait(self, deadline: float | None = None) -> None:
        """Until something is due, or ``deadline`` seconds have passed (a token expiring before
        the next beat: the only timer a connection holds, and only for that last stretch)."""
        if self.events or self.overflowed or self.beat or self._woken:
            self._woken = False
            return
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(max(0.0, deadline), self._wake) if deadline is not None else None
        try:
            await self._waiter
        finally:
            self._waiter, self._woken = None, False
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Hub:
    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[str, list[Subscription]] = {}
        self._count = 0
        self._beat_seconds: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ticks = 0
        self.high_water = 0  # the highest delivery id published: where a catch-up starts

    def subscribe(self, contact: str, beat: float = 15.0) -> Subscription:
        """A mailbox for a connection of ``contact``; the hub beats at least every ``beat`` s."""
        sub = Subscription(contact, self.queue_size, asyncio.current_task())
        sub.slice = self._ticks % SLICES  # first knocked a whole beat from now
        self._subscribers.setdefault(contact, []).append(sub)
        self._count += 1
        if self._beat_seconds is None or beat < self._beat_seconds:
            self._beat_seconds = beat
            self._schedule()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.contact)
        if subs is None or sub not in subs:
            return
        subs.remove(sub)
        self._count -= 1
        if not subs:
            del self._subscribers[sub.contact]
        if not self._count and self._timer is not None:
            self._timer.cancel()
            self._timer, self._beat_seconds = None, None

    def publish(self, events: list[PushEvent]) -> int:
        """Queue each event for every connection of its contact; returns how many were queued."""
        queued = 0
        for event in events:
            self.high_water = max(self.high_water, event.id)
            for sub in self._subscribers.get(event.contact, ()):
                queued += sub.put(event)
        return queued

    def contacts(self) -> list[str]:
        return list(self._subscribers)

    def streams_of(self, contact: str) -> int:
        return len(self._subscribers.get(contact, ()))

    def wake_all(self) -> None:
        """Wake every connection to re-check its right to stay open (the directory changed)."""
        for subs in self._subscribers.values():
            for sub in subs:
                sub.knock()

    def close_all(self) -> None:
        """End every live connection (on shutdown): clients reconnect elsewhere and resume."""
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                if sub.task is not None and not sub.task.done():
                    sub.task.cancel()

    @property
    def connections(self) -> int:
        return self._count

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._beat_seconds is not None:
            tick = self._beat_seconds / SLICES
            self._timer = asyncio.get_running_loop().call_later(tick, self._beat)

    def _beat(self) -> None:
        self._timer = None
        self._ticks += 1
        due = self._ticks % SLICES
        for subs in self._subscribers.values():
            for sub in subs:
                if sub.slice == due:
                    sub.knock(beat=True)
        if self._count:
            self._schedule()
