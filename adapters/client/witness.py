"""A peer broker's witness key, fetched from the peer itself (``GET /v1/keys/witness``).

An auditor checking that a peer cosigned a broker's log asks the *peer* for the key it cosigns
with, not the broker under audit (whose host may be the attacker); pinning the key out of band
(``--witness-key``) is stronger still."""

from __future__ import annotations

import json

import aiohttp

from adapters.bounded import read_at_most
from adapters.client.errors import RecipientError

MAX_KEY_ANSWER = 4096  # bytes


async def witness_key(url: str, *, seconds: float = 10.0) -> str:
    """The peer's ``cosignature/v1`` verifier key, as it publishes it."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.get(url.rstrip("/") + "/v1/keys/witness", allow_redirects=False) as response,
        ):
            raw = await read_at_most(response, MAX_KEY_ANSWER)
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as e:
        raise RecipientError(f"peer unreachable: {e!r}") from e
    if status != 200 or raw is None:
        raise RecipientError(f"the peer gives no witness key (HTTP {status})", status=status)
    try:
        vkey = json.loads(raw)["vkey"]
    except (ValueError, KeyError, TypeError) as e:
        raise RecipientError("the peer's witness key answer is not JSON with a vkey") from e
    if not isinstance(vkey, str):
        raise RecipientError("the peer's witness key answer is not JSON with a vkey")
    return vkey
