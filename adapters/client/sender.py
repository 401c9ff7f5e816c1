"""Sender SDK: post signed notices to a Liaison broker and read their status.

Every request is signed with the agency's Ed25519 key (RFC 9421) over method, target URI,
content type and Content-Digest (RFC 9530), with a fresh nonce and the current time. Retries are
safe: a notice carries an idempotency key (generated when the caller gives none), so a retry
after a timeout or a 5xx can never post it twice. Each retry is signed anew (new nonce).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
import ssl as ssl_module
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.bounded import MAX_ANSWER_BYTES, read_at_most
from adapters.client.errors import BrokerError
from broker.crypto.envelope import open_sealed, unwrap
from broker.crypto.httpsig import content_digest, sign_request
from broker.crypto.keys import load_private_key

RETRY_STATUSES = frozenset({502, 503, 504})
# Refusals the broker gives only after reading the notice's key (it would have answered the
# stored notice instead): they prove an earlier attempt stored nothing. A 401, 413, 415, 429 or
# 5xx comes before or without that read.
SETTLED = frozenset({400, 403, 409, 422})
CAP_XML = "application/cap+xml"


class SenderError(BrokerError):
    """The broker refused the request (``status`` and the problem document), or was unreachable.

    ``may_be_stored``: a notice whose outcome is unknown — an attempt was cut off after it was
    sent, or answered 503 ``commit_in_doubt`` (the broker's database went during the commit),
    and no later attempt settled it. Post it again under ``idempotency_key`` to learn which: the
    broker answers the stored notice, never a second one.
    """

    may_be_stored: bool = False
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]
    replayed: bool = False


class SenderClient:
    """An agency's client. Use as ``async with SenderClient(...) as client``."""

    def __init__(
        self,
        base_url: str,
        key: Ed25519PrivateKey,
        keyid: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        clock: Callable[[], float] = time.time,
        ssl: ssl_module.SSLContext | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        language: str | None = None,
    ) -> None:
        self.max_answer_bytes = max_answer_bytes
        self.base_url = base_url.rstrip("/")
        # Accept-Language: names of channels, roles and places in answers (broker.titles).
        self.language = language
        self.key = key
        self.keyid = keyid
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retries = retries
        self.backoff = backoff
        self.clock = clock
        self.ssl = ssl  # e.g. with a client certificate loaded, for mutual TLS
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_pem(cls, base_url: str, pem: bytes, keyid: str, **options: Any) -> SenderClient:
        pair = load_private_key(pem, expected="ed25519", source="agency key")
        if not isinstance(pair.private, Ed25519PrivateKey):
            raise SenderError("the agency key must be an Ed25519 key")
        return cls(base_url, pair.private, keyid, **options)

    async def __aenter__(self) -> SenderClient:
        connector = aiohttp.TCPConnector(ssl=self.ssl) if self.ssl is not None else None
        self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post_notice(
        self, notice: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Response:
        """Post a notice; retried on network errors and 502/503/504 under the same idempotency key."""
        body = json.dumps(notice, ensure_ascii=False).encode()
        key = str(idempotency_key or notice.get("idempotency_key") or secrets.token_urlsafe(18))
        try:
            return await self._with_retries("POST", "/v1/notices", body, {"Idempotency-Key": key})
        except SenderError as e:
            e.idempotency_key = key
            raise

    async def post_cap(self, alert: bytes, *, supersedes: str | None = None) -> Response:
        """Post a CAP 1.2 alert as it is (``application/cap+xml``): the broker maps it and
        encrypts these very bytes, so the recipient verifies this signature over the alert
        itself. ``supersedes`` travels in the query, covered by ``@target-uri``; retries reuse
        the alert's own idempotency key (``cap:SENDER:IDENTIFIER``)."""
        path = "/v1/notices" + (f"?{urlencode({'supersedes': supersedes})}" if supersedes else "")
        return await self._with_retries("POST", path, alert, {}, CAP_XML)

    async def status(self, notice_id: str) -> Response:
        return await self._with_retries("GET", f"/v1/notices/{notice_id}/status", None, {})

    async def approve(self, notice_id: str, content_digest: str) -> Response:
        """Release a notice held for two-person release, as a second officer of its agency."""
        body = json.dumps({"content_digest": content_digest}).encode()
        return await self._with_retries("POST", f"/v1/notices/{notice_id}/approve", body, {})

    async def refuse(self, notice_id: str, content_digest: str, reason: str) -> Response:
        """Refuse a held notice: it is never routed."""
        body = json.dumps({"content_digest": content_digest, "reason": reason}).encode()
        return await self._with_retries("POST", f"/v1/notices/{notice_id}/refuse", body, {})

    async def sent(self, *, cursor: str | None = None, limit: int = 20) -> Response:
        """A page of this agency's own notices, newest first (``GET /v1/notices``)."""
        query = urlencode({"limit": limit, **({"cursor": cursor} if cursor else {})})
        return await self._with_retries("GET", f"/v1/notices?{query}", None, {})

    async def _with_retries(
        self,
        method: str,
        path: str,
        body: bytes | None,
        extra: dict[str, str],
        content_type: str = "application/json",
    ) -> Response:
        attempt = 0
        unknown = False  # an attempt's outcome is unknown: it may have been stored
        while True:
            try:
                response = await self._send(method, path, body, extra, content_type)
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                # Refused at connect: it never left. Cut off or timed out: it may have arrived.
                unknown |= not isinstance(e, aiohttp.ClientConnectorError)
                if attempt >= self.retries:
                    error = SenderError(f"broker unreachable after {attempt + 1} attempts: {e!r}")
                    error.may_be_stored = unknown and method == "POST"
                    raise error from e
            else:
                unknown |= response.body.get("code") == "commit_in_doubt"
                if response.status not in RETRY_STATUSES or attempt >= self.retries:
                    try:
                        return _checked(response)
                    except SenderError as e:
                        e.may_be_stored = unknown and response.status not in SETTLED
                        raise
            attempt += 1
            await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random()))  # noqa: S311 - jitter

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        extra: dict[str, str],
        content_type: str = "application/json",
    ) -> Response:
        if self._session is None:
            raise SenderError("use SenderClient as an async context manager")
        url = self.base_url + path
        headers = dict(extra)
        if self.language:
            headers["Accept-Language"] = self.language
        components = ["@method", "@target-uri"]
        if body is not None:
            headers["Content-Type"] = content_type
            headers["Content-Digest"] = content_digest(body)
            components += ["content-type", "content-digest"]
        headers.update(
            sign_request(
                method=method,
                url=url,
                headers=headers,
                key=self.key,
                keyid=self.keyid,
                created=int(self.clock()),
                components=components,
            )
        )
        async with self._session.request(method, url, data=body, headers=headers) as response:
            raw = await read_at_most(response, self.max_answer_bytes)
            if raw is None:
                raise SenderError(f"the broker's answer is over {self.max_answer_bytes} bytes")
            text = raw.decode("utf-8", errors="replace")
            try:
                document = json.loads(text) if text else {}
            except ValueError:
                document = {"detail": text[:200]}
            return Response(
                response.status, document, response.headers.get("Idempotent-Replayed") == "true"
            )


def decrypt_reply(reply: dict[str, Any], notice_id: str, agency_x25519_private: bytes) -> str:
    """Open a recipient's reply (from the status view) with the agency's X25519 key."""
    data_key = unwrap(base64.b64decode(reply["wrap"]), agency_x25519_private)
    aad = f"liaison-reply-v1\n{notice_id}".encode()
    return open_sealed(
        base64.b64decode(reply["ciphertext"]), base64.b64decode(reply["nonce"]), aad, data_key
    ).decode()


def _checked(response: Response) -> Response:
    if response.status >= 400:
        detail = response.body.get("detail") or response.body.get("title") or "refused"
        raise SenderError(
            f"{response.status} {response.body.get('code', '')}: {detail}".strip(),
            status=response.status,
            problem=response.body,
        )
    return response
