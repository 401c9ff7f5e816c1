"""The driver that POSTs a forwarded notice to a peer broker (``broker/federation/forward.py``).

The request is signed before it gets here; this only sends it, never follows a redirect, reads
no answer body, and turns every failure into a result the outbox retries."""

from __future__ import annotations

import ssl

import aiohttp

from broker.domain.delivery import WebhookResult


class PeerDriver:
    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._context = context  # broker.http.tls.peer_client_context: the CA, this broker's cert

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, *, seconds: float
    ) -> WebhookResult:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._context) if self._context else None
            self._session = aiohttp.ClientSession(connector=connector)
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
        except aiohttp.ClientConnectorCertificateError as e:
            return WebhookResult(None, certificate_error(e))
        except aiohttp.ClientError as e:
            return WebhookResult(None, type(e).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def certificate_error(error: Exception) -> str:
    """Why a peer's server certificate was refused, for the outbox row's last_error."""
    reason = getattr(getattr(error, "certificate_error", None), "verify_message", None)
    return f"peer certificate refused: {reason or error}"
