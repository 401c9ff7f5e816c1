"""Fetch a trusted OpenID Connect issuer's JWKS over HTTP, bounded in size, time and type.

Invariants: at most ``max_bytes`` of the answer are read (a larger ``Content-Length`` is refused
before the body, a longer body as soon as it passes the limit); the whole fetch, body included,
ends within ``timeout_seconds``; only a 200 answer of type ``application/json`` or
``application/jwk-set+json`` is used. Every failure is ``errors.JwksUnavailable``. This
function is a ``broker.service.ports.JwksFetcher``.
"""

from __future__ import annotations

import aiohttp

from adapters.bounded import read_at_most
from broker.errors import JwksUnavailable

JWKS_TYPES = ("application/json", "application/jwk-set+json")


async def fetch_jwks(url: str, *, timeout_seconds: float, max_bytes: int) -> str:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as http,
            http.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise JwksUnavailable(f"HTTP {response.status}")
            if response.content_type not in JWKS_TYPES:
                raise JwksUnavailable("the answer is not JSON")
            body = await read_at_most(response, max_bytes)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise JwksUnavailable(type(e).__name__) from e
    if body is None:
        raise JwksUnavailable("JWKS too large")
    return body.decode("utf-8", errors="replace")
