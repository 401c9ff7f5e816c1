"""Reading an HTTP answer the other side controls: never more than a stated number of bytes.

A larger ``Content-Length`` is refused before the body; a longer body as soon as it passes the
limit, and the caller closes the connection on the rest. Used by every adapter that reads an
answer (the SDKs reading the broker, the JWKS fetch); webhook answers are not read at all.
"""

from __future__ import annotations

import aiohttp

MAX_ANSWER_BYTES = 16 * 1024 * 1024  # bytes of one broker answer the SDKs read (a notice < 1 MiB)


async def read_at_most(response: aiohttp.ClientResponse, max_bytes: int) -> bytes | None:
    """The whole body, or None when it is (or says it is) longer than ``max_bytes``."""
    if (response.content_length or 0) > max_bytes:
        return None
    body = bytearray()
    async for chunk in response.content.iter_chunked(65_536):
        body += chunk
        if len(body) > max_bytes:
            return None
    return bytes(body)
