"""Live push: an in-process hub that fans delivery events out to connected recipients.

Each connection has a bounded queue. A reader too slow to keep up is marked overflowed and
disconnected (it resumes from its Last-Event-ID on reconnect), so no client can make the broker
grow memory. Events are metadata only; the contents stay in the inbox, encrypted.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

WAKE_UP = 0  # delivery ids start at 1: an event with id 0 only wakes a stream


@dataclass(frozen=True, slots=True)
class PushEvent:
    id: int  # the delivery id: increasing, so it orders and resumes a stream
    contact: str
    data: dict[str, Any]
    item: Any = None  # the store's InboxItem, for marking it delivered once sent


@dataclass(eq=False)
class Subscription:
    contact: str
    queue: asyncio.Queue[PushEvent]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[Any] | None = None  # the connection's handler, cancelled on shutdown


class Hub:
    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self.high_water = 0  # the highest delivery id published: where a catch-up starts

    def subscribe(self, contact: str) -> Subscription:
        sub = Subscription(contact, asyncio.Queue(self.queue_size), task=asyncio.current_task())
        self._subscribers[contact].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.contact)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.contact]

    def publish(self, events: list[PushEvent]) -> int:
        """Queue each event for every connection of its contact; returns how many were queued."""
        queued = 0
        for event in events:
            self.high_water = max(self.high_water, event.id)
            for sub in tuple(self._subscribers.get(event.contact, ())):
                try:
                    sub.queue.put_nowait(event)
                    queued += 1
                except asyncio.QueueFull:
                    sub.overflowed.set()
        return queued

    def contacts(self) -> list[str]:
        return list(self._subscribers)

    def streams_of(self, contact: str) -> int:
        return len(self._subscribers.get(contact, ()))

    def wake_all(self) -> None:
        """Wake every connection to re-check its right to stay open (the directory changed).
        The wake-up is an event no stream sends (id 0); a full queue is a slow reader, dropped."""
        for contact, subs in list(self._subscribers.items()):
            for sub in tuple(subs):
                try:
                    sub.queue.put_nowait(PushEvent(WAKE_UP, contact, {}))
                except asyncio.QueueFull:
                    sub.overflowed.set()

    def close_all(self) -> None:
        """End every live connection (on shutdown): clients reconnect elsewhere and resume."""
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                if sub.task is not None and not sub.task.done():
                    sub.task.cancel()

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subscribers.values())
