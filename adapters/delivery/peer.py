"""The driver that POSTs a forwarded notice to a peer broker (``broker/federation/forward.py``).

The request is signed before it gets here; this only sends it, never follows a redirect, reads
no answer body, and turns every failure into a result the outbox retries."""

from __future__ import annotations

import aiohttp

from broker.domain.delivery import WebhookResult


class PeerDriver:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, *, seconds: float
    ) -> WebhookResult:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                url,
                data=body,
                headers={**headers, "user-agent": "Liaison-Federation/1"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                return WebhookResult(
                    response.status, None if response.status < 300 else f"HTTP {response.status}"
                )
        except TimeoutError:
            return WebhookResult(None, "timed out")
        except aiohttp.ClientError as e:
            return WebhookResult(None, type(e).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
