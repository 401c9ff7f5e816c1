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

    async def run(self) -> None:
        delay, first = 0.5, True
        while True:
            try:
                conn = await asyncpg.connect(self.url, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            delay = 0.5
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, lambda *args: self._dispatch(args[-1]))
            self.connected.set()
            if not first:
                await self.on_reconnect()
            first = False
            try:
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
            log.warning("listener_reconnecting")

    def _dispatch(self, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return
        task = asyncio.ensure_future(self.on_payload(data))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
