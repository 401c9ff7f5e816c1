"""The driver that submits this broker's checkpoints to a peer's witness (c2sp.org/tlog-witness
``add-checkpoint``, ``broker/federation/cosigning.py``).

It POSTs the body it is given, never follows a redirect, reads at most ``MAX_ANSWER`` bytes of
the answer, and turns every failure into an answer without a status (the caller backs off)."""

from __future__ import annotations

import ssl

import aiohttp

from adapters.delivery.peer import certificate_error
from broker.domain.delivery import WitnessAnswer

MAX_ANSWER = 64 * 1024  # bytes: a few cosignature lines, or a size


class WitnessDriver:
    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._context = context  # broker.http.tls.peer_client_context: the CA, this broker's cert

    async def add_checkpoint(self, url: str, body: bytes, *, seconds: float) -> WitnessAnswer:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._context) if self._context else None
            self._session = aiohttp.ClientSession(connector=connector)
        try:
            async with self._session.post(
                url,
                data=body,
                headers={"user-agent": "Liaison-Witness-Client/1", "content-type": "text/plain"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                raw = await response.content.read(MAX_ANSWER)
                return WitnessAnswer(
                    response.status, response.content_type, raw.decode("utf-8", "replace")
                )
        except TimeoutError:
            return WitnessAnswer(None, error="timed out")
        except aiohttp.ClientConnectorCertificateError as e:
            return WitnessAnswer(None, error=certificate_error(e))
        except aiohttp.ClientError as e:
            return WitnessAnswer(None, error=type(e).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
