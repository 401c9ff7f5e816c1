"""Recipient SDK: authenticate with the contact's own key, read, verify, acknowledge, watch.

Everything secret happens here, on the recipient's device: the access token is obtained with an
assertion signed by the contact's Ed25519 key; a notice is decrypted with the contact's X25519
key; and before anything is shown, the agency's RFC 9421 signature and Content-Digest are checked
over the decrypted bytes, and the signed notice must agree with the metadata the broker sent.
The agency's key is taken from the administrators' signed key bindings, checked against the root
this client pinned at enrolment (``trust``), never from what the broker serves: a key the broker's
host inserted, or one revoked since, is refused.
Any mismatch raises ``VerificationFailed``: a notice that does not verify is never returned.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.bounded import MAX_ANSWER_BYTES, read_at_most
from adapters.client.errors import RecipientError, VerificationFailed
from adapters.client.trust import PinnedRoot
from adapters.client.verify import (
    VerifiedNotice,
    foreign_reply_key,
    local_reply_key,
    verify_notice,
)
from broker.audit.events import recanonical
from broker.audit.verify import hidden_line
from broker.crypto.envelope import (
    seal,
    wrap,
)
from broker.crypto.keys import KeyPair, load_private_key
from broker.crypto.tokens import make_assertion
from broker.domain.notice import ack_statement
from broker.errors import TrustRefused
from broker.trust.core import MAX_METADATA_BYTES, KeyBindings


class RecipientClient:
    """A focal point's client. Use as ``async with RecipientClient(...) as client``."""

    def __init__(
        self,
        base_url: str,
        contact: str,
        signing: KeyPair,
        decryption: KeyPair | None,
        *,
        timeout: float = 30.0,
        ssl: ssl_module.SSLContext | None = None,
        pinned_agency_keys: dict[str, bytes] | None = None,
        trust: PinnedRoot | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        peer_roots: dict[str, str] | None = None,
        language: str | None = None,
    ) -> None:
        self.max_answer_bytes = max_answer_bytes
        # Accept-Language: names of channels, roles and places in answers (broker.titles).
        self.language = language
        if not isinstance(signing.private, Ed25519PrivateKey) or (
            decryption is not None and decryption.type != "x25519"
        ):
            raise RecipientError(
                "a contact needs an Ed25519 signing key and an X25519 decryption key"
            )
        self._signer: Ed25519PrivateKey = signing.private
        self.base_url = base_url.rstrip("/")
        self.contact = contact
        self.signing = signing
        self.decryption = decryption
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.ssl = ssl
        self.pinned = pinned_agency_keys  # when given, only these agency keys are trusted
        self.trust = trust  # otherwise the agency's key must be bound under this pinned root
        # A notice from a peer broker: its agency key must be bound under that country's root,
        # pinned here per peer ("sha256:…", the agreement's directory_root), never this broker's.
        self.peer_roots = peer_roots or {}
        self.clock = clock  # assertions are dated by it; tests share the broker's clock
        self._token: tuple[str, float] | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_pem(
        cls, base_url: str, contact: str, signing_pem: bytes, decryption_pem: bytes, **options: Any
    ) -> RecipientClient:
        return cls(
            base_url,
            contact,
            load_private_key(signing_pem, expected="ed25519", source="signing key"),
            load_private_key(decryption_pem, expected="x25519", source="decryption key"),
            **options,
        )

    async def __aenter__(self) -> RecipientClient:
        connector = aiohttp.TCPConnector(ssl=self.ssl) if self.ssl is not None else None
        self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    # -- authentication ------------------------------------------------------------------------
    async def token(self) -> str:
        if self._token is not None and self._token[1] > self.clock().timestamp() + 30:
            return self._token[0]
        assertion = make_assertion(
            self._signer,
            contact=self.contact,
            kid=self.signing.key_id(self.contact),
            audience=self.base_url,
            now=self.clock(),
        )
        body = await self._request(
            "POST",
            "/v1/token",
            json_body={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
            auth=False,
        )
        self._token = (body["access_token"], self.clock().timestamp() + float(body["expires_in"]))
        return str(body["access_token"])

    # -- the inbox -----------------------------------------------------------------------------
    async def inbox(
        self,
        *,
        cursor: str | None = None,
        limit: int = 50,
        status: str | None = None,
        channel: str | None = None,
    ) -> dict[str, Any]:
        params = {
            k: v
            for k, v in (
                ("cursor", cursor),
                ("limit", str(limit)),
                ("status", status),
                ("channel", channel),
            )
            if v is not None
        }
        return await self._request("GET", "/v1/inbox", params=params)

    async def read(self, notice_id: str) -> VerifiedNotice:
        """Fetch, decrypt and verify a notice; raise VerificationFailed rather than return doubt."""
        fetched = await self._request("GET", f"/v1/notices/{notice_id}")
        return self.verify(fetched, await self.key_bindings() if self.trust else None)

    async def key_bindings(self) -> KeyBindings:
        """The administrators' key bindings, verified against the pinned root (fetched each time)."""
        if self.trust is None:
            raise VerificationFailed("no pinned directory root")
        try:
            return await self.trust.refresh(self._fetch_public, self.clock())
        except TrustRefused as e:
            raise VerificationFailed(e.message) from e

    def verify(
        self, fetched: dict[str, Any], bindings: KeyBindings | None = None
    ) -> VerifiedNotice:
        """Decrypt and verify a fetched notice (``adapters.client.verify``).

        A notice wrapped for another of this contact's keys raises ``SentToPreviousKey``: the
        contact's key changed and the broker has not re-wrapped it yet (not tampering).
        """
        if self.decryption is None:
            raise RecipientError("no X25519 decryption key was given: notices cannot be read")
        return verify_notice(
            fetched,
            self.decryption.private_raw,
            self.pinned,
            bindings,
            own_key_id=self.decryption.key_id(self.contact),
            peer_roots=self.peer_roots,
            now=self.clock(),
        )

    async def ack(
        self,
        notice_id: str,
        *,
        reply: str | None = None,
        agency_key: tuple[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Acknowledge after verifying; with ``reply`` (and the agency's X25519 key), reply encrypted.

        For a notice that crossed a border the key is the one the sending country bound to the
        agency (``agency_key`` may be omitted; if given, it must be that one)."""
        fetched = await self._request("GET", f"/v1/notices/{notice_id}")
        bindings = await self.key_bindings() if self.trust else None
        verified = self.verify(fetched, bindings)
        if reply is not None and "origin" in verified.metadata:
            pins = {**(bindings.peer_roots if bindings else {}), **self.peer_roots}
            agency_key = foreign_reply_key(verified.metadata, pins, agency_key, self.clock())
        elif reply is not None and agency_key is not None and bindings is not None:
            # The broker offers the key; the administrators' bindings decide: a broker that
            # offers a key of its own reads nothing.
            local_reply_key(bindings, str(verified.metadata.get("sender")), agency_key)
        statement = ack_statement(notice_id, self.contact, verified.content_digest)
        body: dict[str, Any] = {
            "key_id": self.signing.key_id(self.contact),
            "signature": base64.b64encode(self._signer.sign(statement)).decode(),
        }
        if reply is not None:
            if agency_key is None:
                raise RecipientError("a reply needs the sending agency's X25519 key")
            sealed = seal(reply.encode(), f"liaison-reply-v1\n{notice_id}".encode())
            body["reply"] = {
                "key_id": agency_key[0],
                "wrap": _b64(wrap(sealed.data_key, agency_key[1])),
                "nonce": _b64(sealed.nonce),
                "ciphertext": _b64(sealed.ciphertext),
            }
        return await self._request("POST", f"/v1/notices/{notice_id}/ack", json_body=body)

    async def watch(
        self, *, last_event_id: int | None = None
    ) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """Live events (delivery id, metadata) until the broker closes the stream."""
        session = self._require_session()
        headers = {"Authorization": f"Bearer {await self.token()}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
        async with session.get(
            self.base_url + "/v1/stream", headers=headers, timeout=timeout
        ) as response:
            if response.status != 200:
                raise RecipientError(f"stream refused: {response.status}", status=response.status)
            event_id: int | None = None
            data: list[str] = []
            async for raw in response.content:
                if sum(len(d) for d in data) > self.max_answer_bytes:
                    raise RecipientError("a stream event is over the answer limit")
                line = raw.decode().rstrip("\r\n")
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and event_id is not None and data:
                    yield event_id, json.loads("\n".join(data))
                    event_id, data = None, []

    async def follow(
        self, *, last_event_id: int | None = None, pause_seconds: float = 0.5
    ) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """Live events across stream ends. The broker ends a stream when its token expires (or
        its right to it ends): this resumes with a fresh token from the last event seen, so
        nothing is missed or repeated. A refusal — a revoked key, an ended assignment — ends it
        with RecipientError."""
        last = last_event_id
        while True:
            self._token = None  # a fresh token for each stream: it lives as long as the token
            async for event_id, data in self.watch(last_event_id=last):
                last = event_id
                yield event_id, data
            await asyncio.sleep(pause_seconds)

    # -- auditors ------------------------------------------------------------------------------
    async def audit_checkpoint(self, *, fresh: bool = False) -> dict[str, Any]:
        return await self._request(
            "GET", "/v1/audit/checkpoint", params={"fresh": "1"} if fresh else {}
        )

    async def audit_checkpoints(self) -> list[str]:
        """Every checkpoint the broker serves, smallest first, with the witnesses' cosignature
        lines its peers returned appended (``GET /v1/audit/checkpoints``, page by page)."""
        notes: list[str] = []
        cursor = "0"
        while True:
            page = await self._request("GET", "/v1/audit/checkpoints", params={"cursor": cursor})
            notes += [c["note"] for c in page.get("checkpoints", []) if isinstance(c, dict)]
            if not page.get("next_cursor"):
                return notes
            cursor = str(page["next_cursor"])

    async def audit_events(
        self, *, cursor: int = 0, limit: int = 1000, **filters: str
    ) -> dict[str, Any]:
        params = {"cursor": str(cursor), "limit": str(limit), **filters}
        return await self._request("GET", "/v1/audit/events", params=params)

    async def continuity_report(self, jurisdiction: str | None = None) -> dict[str, Any]:
        """The continuity report, within this auditor's jurisdiction."""
        params = {"jurisdiction": jurisdiction} if jurisdiction else {}
        return await self._request("GET", "/v1/directory/continuity", params=params)

    async def audit_inclusion(self, seq: int, size: int) -> dict[str, Any]:
        return await self._request(
            "GET", "/v1/audit/proof/inclusion", params={"seq": str(seq), "size": str(size)}
        )

    async def audit_consistency(self, first: int, second: int) -> dict[str, Any]:
        return await self._request(
            "GET",
            "/v1/audit/proof/consistency",
            params={"first": str(first), "second": str(second)},
        )

    async def audit_export(self) -> AsyncIterator[bytes]:
        """The log as an export: a fresh signed checkpoint, then every event it covers; those
        outside this auditor's jurisdiction as hidden lines (their leaf hash in their place)."""
        checkpoint = await self.audit_checkpoint(fresh=True)
        header = {
            "format": "liaison-audit-v2",
            "origin": checkpoint["origin"],
            "key_name": checkpoint["key_name"],
            "public_key": checkpoint["public_key"],
            "checkpoints": [checkpoint["note"]],
        }
        yield json.dumps(header).encode() + b"\n"
        size, cursor, sent = checkpoint["size"], 0, 0
        while sent < size:
            page = await self.audit_events(cursor=cursor, hidden="leaves")
            for event in page["events"]:
                if sent >= size:
                    break
                hidden = event.get("hidden") is True
                yield (hidden_line(event["seq"], event["leaf"]) if hidden else _leaf(event)) + b"\n"
                sent += 1
            if not page["next_cursor"]:
                break
            cursor = int(page["next_cursor"])

    # -- plumbing ------------------------------------------------------------------------------
    async def _fetch_public(self, path: str) -> bytes | None:
        """GET an unauthenticated file; None on 404. Bounded: trust metadata is small."""
        session = self._require_session()
        try:
            async with session.get(self.base_url + path) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise RecipientError(f"{path}: {response.status}", status=response.status)
                data = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    data += chunk
                    if len(data) > MAX_METADATA_BYTES:
                        break
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RecipientError(f"broker unreachable: {e!r}") from e
        if len(data) > MAX_METADATA_BYTES:
            raise VerificationFailed(f"{path} is larger than {MAX_METADATA_BYTES} bytes")
        return bytes(data)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RecipientError("use RecipientClient as an async context manager")
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        auth: bool = True,
    ) -> dict[str, Any]:
        session = self._require_session()
        headers = {"Authorization": f"Bearer {await self.token()}"} if auth else {}
        if self.language:
            headers["Accept-Language"] = self.language
        try:
            async with session.request(
                method, self.base_url + path, params=params, json=json_body, headers=headers
            ) as response:
                raw = await read_at_most(response, self.max_answer_bytes)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RecipientError(f"broker unreachable: {e!r}") from e
        if raw is None:
            raise RecipientError(f"the broker's answer is over {self.max_answer_bytes} bytes")
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {"detail": text[:200]}
        if response.status >= 400:
            code = body.get("code") or body.get("error", "")  # problem+json, or RFC 6749 §5.2
            detail = body.get("detail") or body.get("error_description", "refused")
            raise RecipientError(
                f"{response.status} {code}: {detail}",
                status=response.status,
                problem=body,
            )
        return dict(body)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _leaf(event: dict[str, Any]) -> bytes:
    """An event's exact leaf bytes: as the broker gives them (``leaf_data``), else (a broker from
    before leaf_data) re-derived from its fields in its own leaf format."""
    data = event.get("leaf_data")
    return base64.b64decode(data) if isinstance(data, str) else recanonical(event)
