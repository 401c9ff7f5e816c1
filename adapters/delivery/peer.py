"""The driver that POSTs a forwarded notice to a peer broker (``broker/federation/forward.py``).

The request is signed before it gets here; this only sends it, never follows a redirect, and
turns every failure into a result for the outbox: a refusal carries the peer's reason (its
problem's ``reason`` or ``detail``: at most 4 KiB read, 200 characters kept, control characters
escaped) and a pause asks for its Retry-After."""

from __future__ import annotations

import json
import ssl

import aiohttp

from adapters.delivery.webhook import retry_after
from broker.domain.delivery import WebhookResult
from broker.terminal import safe

READ_AT_MOST = 4096  # bytes of a refusal's body
REASON_AT_MOST = 200  # characters of the peer's reason kept (the outbox row holds 300)


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
                if response.status < 300:
                    return WebhookResult(response.status)
                reason = await _reason(response)
                return WebhookResult(
                    response.status,
                    f"HTTP {response.status}" + (f": {reason}" if reason else ""),
                    retry_after(response.headers.get("Retry-After")),
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


async def _reason(response: aiohttp.ClientResponse) -> str:
    """The peer's words for a refusal (a problem+json ``reason``, else its ``detail``), or ""."""
    try:
        body = await response.content.read(READ_AT_MOST)
        problem = json.loads(body)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return ""
    if not isinstance(problem, dict):
        return ""
    words = next(
        (v for k in ("reason", "detail") if isinstance(v := problem.get(k), str) and v), ""
    )
    return safe(words)[:REASON_AT_MOST]


def certificate_error(error: Exception) -> str:
    """Why a peer's server certificate was refused, for the outbox row's last_error."""
    reason = getattr(getattr(error, "certificate_error", None), "verify_message", None)
    return f"peer certificate refused: {reason or error}"
