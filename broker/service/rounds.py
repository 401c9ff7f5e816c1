"""Work taken in rounds: one consumer task per queue takes whatever is waiting at once.

Group commit (intake), ordered live push and grouped "delivered" marks share this machinery: a
queue, a consumer task started on first use and cancelled on close, and futures that every
waiter is answered through, with the round's result or its failure, never left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

from broker.logs import get_logger

T = TypeVar("T")
log = get_logger("liaison.rounds")


class Rounds(Generic[T]):
    def __init__(
        self, name: str, handle: Callable[[list[T]], Awaitable[None]], max_round: int
    ) -> None:
        self.name = name
        self.handle = handle
        self.max_round = max_round
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def put(self, item: T) -> None:
        """Queue ``item`` for the next round (synchronous: the call order is the round order)."""
        self._queue.put_nowait(item)
        if self._task is None or self._task.done():
            # A fresh context: the round serves many requests and must not carry the logging
            # context (request id) of whichever request happened to start it.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=self.name, context=contextvars.Context()
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            while len(items) < self.max_round and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                await self.handle(items)
            except Exception:  # a handler answers its own waiters; this keeps the rounds going
                log.exception("round_failed", rounds=self.name)


def settle(futures: Iterable[asyncio.Future[None]], error: BaseException | None = None) -> None:
    """Answer every waiter of a round that is not answered yet."""
    for done in futures:
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
