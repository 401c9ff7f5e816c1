"""Standard Webhooks delivery: sign and send one event (https://www.standardwebhooks.com).

Headers ``webhook-id`` (stable per message: receivers de-duplicate on it), ``webhook-timestamp``
and ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` with a ``whsec_`` secret, or
``v1a,<base64 Ed25519>`` with the broker's webhook keys, both over ``id.timestamp.body``. During
a key rotation each message carries one ``v1a`` signature per key (space-separated, as the
specification allows), the new key's first: a receiver that pinned the old ``whpk_`` key keeps
verifying until that key is removed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.domain.delivery import WebhookResult


class WebhookDriver:
    """``broker.service.ports.WebhookSender`` over aiohttp: one ClientSession for every webhook,
    opened at the first send and closed with ``close``. Events without a secret are signed with
    each of ``keys`` (the broker's Ed25519 webhook keys, the active one first)."""

    def __init__(self, keys: Sequence[Ed25519PrivateKey]) -> None:
        self._keys = tuple(keys)
        self._session: aiohttp.ClientSession | None = None

    async def send(
        self,
        url: str,
        msg_id: str,
        timestamp: int,
        body: bytes,
        *,
        secret: str | None,
        seconds: float,
    ) -> WebhookResult:
        try:
            raw = secret_bytes(secret) if secret is not None else None
        except ValueError as e:
            return WebhookResult(None, f"secret unavailable: {e}")
        signed = signature(msg_id, timestamp, body, secret=raw, keys=() if raw else self._keys)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await send(self._session, url, msg_id, timestamp, body, signed, seconds=seconds)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def secret_bytes(secret: str) -> bytes:
    """The key of a Standard Webhooks secret (``whsec_`` + base64)."""
    return base64.b64decode(secret.strip().removeprefix("whsec_"))


def signature(
    msg_id: str,
    timestamp: int,
    body: bytes,
    *,
    secret: bytes | None = None,
    keys: Sequence[Ed25519PrivateKey] = (),
) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    if secret is not None:
        return "v1," + base64.b64encode(hmac.new(secret, content, hashlib.sha256).digest()).decode()
    if keys:
        return " ".join("v1a," + base64.b64encode(key.sign(content)).decode() for key in keys)
    raise ValueError("a webhook is signed with a secret or a key")


async def send(
    session: aiohttp.ClientSession,
    url: str,
    msg_id: str,
    timestamp: int,
    body: bytes,
    signed: str,
    *,
    seconds: float,
) -> WebhookResult:
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signed,
        "user-agent": "Liaison-Webhooks/1",
    }
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            # The answer's body is never read: the status and Retry-After are all we use, and a
            # receiver must not make the broker buffer what it sends (the connection is closed).
            return WebhookResult(
                response.status,
                None if response.status < 300 else f"HTTP {response.status}",
                retry_after(response.headers.get("Retry-After")),
            )
    except TimeoutError:
        return WebhookResult(None, "timed out")
    except aiohttp.ClientError as e:
        return WebhookResult(None, type(e).__name__)


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delay-seconds or an HTTP date), if it says."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
