"""Cross-process wake-ups over PostgreSQL LISTEN/NOTIFY.

Writers call ``notify`` inside the transaction that creates deliveries: PostgreSQL delivers the
notification only if, and when, that transaction commits. Every broker process runs a
``Listener`` on a dedicated connection and hands each payload to its local push hub. When the
listening connection is lost it reconnects with backoff and asks for a catch-up, so live
clients on this process miss nothing that committed meanwhile. On SQLite (one process) there is
nothing to listen to: the committing process announces directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.logs import get_logger

CHANNEL = "liaison_deliveries"
log = get_logger("liaison.listener")


async def notify(conn: AsyncConnection, payload: dict[str, Any]) -> None:
    """Queue a notification in the caller's transaction (PostgreSQL only; a no-op elsewhere)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": json.dumps(payload)},
        )


class Listener:
    def __init__(
        self,
        url: str,
        on_payload: Callable[[dict[str, Any]], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.on_payload = on_payload
        self.on_reconnect = on_reconnect
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._lost: asyncio.Event | None = None
        self._relays: set[asyncio.Task[None]] = set()  # in flight; finished before shutdown

    async def stop(self) -> None:
        """Ask ``run`` to close its connection and return (cancelling mid-connect would leak one)."""
        self._stopping.set()
        if self._lost is not None:
            self._lost.set()
        if self._relays:  # a relay holds a database connection: let it return it
            await asyncio.wait(self._relays, timeout=5)

    def stopping(self) -> bool:
        """True once ``stop`` was asked: ``run`` returning then is no failure."""
        return self._stopping.is_set()

    async def run(self) -> None:
        delay, first = 0.5, True
        while not self._stopping.is_set():
            try:
                conn = await asyncpg.connect(self.url, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, 10)
                continue
            delay = 0.5
            lost = self._lost = asyncio.Event()
            if self._stopping.is_set():
                lost.set()
            try:  # from here on, however we leave (shutdown included), the connection is closed
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, lambda *args: self._dispatch(args[-1]))
                self.connected.set()
                if not first:
                    await self.on_reconnect()
                first = False
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), timeout=15)
                    except TimeoutError:
                        await conn.execute("SELECT 1")  # notice a silently dead connection
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass
            finally:
                self.connected.clear()
                if not conn.is_closed():
                    conn.terminate()
            if not self._stopping.is_set():
                log.warning("listener_reconnecting")

    def _dispatch(self, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if self._stopping.is_set():
            return
        task = asyncio.ensure_future(self.on_payload(data))
        self._relays.add(task)
        task.add_done_callback(self._relayed)

    def _relayed(self, task: asyncio.Task[None]) -> None:
        self._relays.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("relay_failed", error=type(task.exception()).__name__)
