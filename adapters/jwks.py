"""Fetch a trusted OpenID Connect issuer's JWKS over HTTP, with a timeout and a size cap."""

from __future__ import annotations

import aiohttp

MAX_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    pass


async def fetch_jwks(url: str, *, timeout_seconds: float) -> str:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as http,
            http.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise JwksUnavailable(f"HTTP {response.status}")
            body = await response.content.read(MAX_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise JwksUnavailable(type(e).__name__) from e
    if len(body) > MAX_BYTES:
        raise JwksUnavailable("JWKS too large")
    return body.decode("utf-8", errors="replace")
