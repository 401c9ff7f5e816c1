"""Bounded reads and bad input: what a remote party sends never makes the broker read without
limit, answer 500 or 503, or echo it back.

Attackers (THREATS.md): *anyone on the network* (huge, deep, malformed or out-of-range input, a
header over the limit), *a misbehaving agency system* (a signed notice with a NUL in an id, an
oversize idempotency key, a date that is not one), and a *hostile webhook receiver or OIDC
issuer* answering with more bytes than anyone should read. Each test plays it against a real
broker on loopback, over SQLite and PostgreSQL where the store is involved, and measures what
the other side sent (bytes), never how long anything took.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from adapters.client.errors import RecipientError
from adapters.client.recipient import RecipientClient
from adapters.client.sender import SenderClient, SenderError
from broker.clock import FrozenClock
from broker.crypto.keys import read_private_key
from broker.http.keys import OUTBOX, TOKENS
from tests.fault.harness import BrokerProcess, Figures
from tests.integration.intake_support import Broker, example, running_broker, signed_headers
from tests.integration.test_adapters import add_webhooks

MIB = 1024 * 1024
PROBLEM = "application/problem+json"
DEEP = 50_000
HUGE_NUMBER = "1" * 30


class HostileServer:
    """An HTTP/1.1 server on loopback that answers every request with ``size`` bytes of body
    (``body`` first, then spaces), in ``chunk``-sized writes, and records how many bytes each
    answer got out before the client closed the connection."""

    def __init__(
        self,
        size: int,
        *,
        status: int = 200,
        content_type: str = "application/json",
        body: bytes = b"",
        chunk: int = 65_536,
        pause: float = 0.0,
    ) -> None:
        self.size, self.status, self.content_type = size, status, content_type
        self.body, self.chunk, self.pause = body, chunk, pause
        self.sent: list[int] = []
        self.answered = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> HostileServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = 0
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    await reader.readexactly(int(line.split(":", 1)[1]))
            writer.write(
                f"HTTP/1.1 {self.status} Answer\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {self.size}\r\n\r\n".encode()
            )
            body = self.body + b" " * (self.size - len(self.body))
            while sent < self.size:
                piece = body[sent : sent + self.chunk]
                writer.write(piece)
                await writer.drain()
                sent += len(piece)
                if self.pause:
                    await asyncio.sleep(self.pause)  # a slow sender, not a timed assertion
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.sent.append(sent)
            self.answered.set()
            writer.close()


# -- finding 9: every read of what a remote party sends is bounded -----------------------------


async def test_a_webhook_receiver_answering_64_mib_gets_its_answer_left_unread(
    demo_dir: Path, figures: Figures
) -> None:
    """A receiver that answers a webhook with 64 MiB (here a 500, so the call is retried too)
    has the connection closed on it after the status line: what it got out is what loopback
    buffers hold, not its body."""
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    async with HostileServer(64 * MIB, status=500) as receiver:
        add_webhooks(demo_dir, {"mk-kumanovo-pcve": receiver.url})
        env = {"LIAISON_WEBHOOKS_TIMEOUT_SECONDS": "60", "LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1"}
        url = f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
        async with running_broker(demo_dir, url, clock=clock, env=env) as broker:
            async with broker.sender("mk-mvr", clock) as ministry:
                await ministry.post_notice(example("returnee-repatriation"))
            for _ in range(2):
                receiver.answered.clear()
                assert await broker.app[OUTBOX].tick(clock.now()) == 1
                await asyncio.wait_for(receiver.answered.wait(), 30)
                clock.advance(timedelta(minutes=5))
            attempts = await broker.scalar("select attempts from outbox")
    figures.bad_inputs += len(receiver.sent)
    assert attempts == 2
    assert len(receiver.sent) == 2 and max(receiver.sent) < 16 * MIB, receiver.sent


def _jwks(padding: int = 0) -> bytes:
    key = generate_private_key(SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return json.dumps({"keys": [{**jwk, "kid": "idp-1", "use": "sig"}]}).encode() + b" " * padding


def _oidc_env(url: str, **limits: str) -> dict[str, str]:
    return {
        "LIAISON_OIDC_ISSUER": "https://idp.example",
        "LIAISON_OIDC_AUDIENCE": "liaison",
        "LIAISON_OIDC_JWKS_URL": url,
        **{f"LIAISON_OIDC_{name.upper()}": value for name, value in limits.items()},
    }


@asynccontextmanager
async def _issuer(
    demo_dir: Path, server: HostileServer, **limits: str
) -> AsyncIterator[tuple[Broker, HostileServer]]:
    async with server:
        url = f"sqlite+aiosqlite:///{demo_dir / 'liaison.db'}"
        env = _oidc_env(server.url, **limits)
        async with running_broker(demo_dir, url, env=env) as broker:  # start-up fetches once
            await asyncio.wait_for(server.answered.wait(), 30)
            yield broker, server


async def test_a_jwks_over_the_configured_limit_is_refused(demo_dir: Path) -> None:
    body = _jwks(padding=2_000)
    server = HostileServer(len(body), body=body)
    async with _issuer(demo_dir, server, jwks_max_bytes="1024") as (broker, _):
        assert broker.app[TOKENS].oidc_jwks is None  # external tokens refused: fail closed


async def test_an_endless_jwks_is_read_only_up_to_the_limit(demo_dir: Path) -> None:
    body = _jwks()
    server = HostileServer(64 * MIB, body=body)
    async with _issuer(demo_dir, server) as (broker, _):
        assert broker.app[TOKENS].oidc_jwks is None
    assert max(server.sent) < 16 * MIB, server.sent


async def test_a_jwks_that_is_not_json_is_refused(demo_dir: Path) -> None:
    body = _jwks()
    server = HostileServer(len(body), body=body, content_type="text/html")
    async with _issuer(demo_dir, server) as (broker, _):
        assert broker.app[TOKENS].oidc_jwks is None


async def test_a_jwks_sent_in_small_slow_pieces_is_read_whole(demo_dir: Path) -> None:
    body = _jwks(padding=8_000)
    server = HostileServer(len(body), body=body, chunk=1_000, pause=0.02)
    async with _issuer(demo_dir, server) as (broker, _):
        assert broker.app[TOKENS].oidc_jwks is not None
        assert broker.app[TOKENS].oidc_jwks["idp-1"] is not None


async def test_the_sdks_read_at_most_their_bound_from_whoever_answers(demo_dir: Path) -> None:
    """Whoever answers in the broker's place (a hijacked name, the broker's own host) with
    64 MiB gets an error from the sender and the recipient clients after their bound."""
    agency = read_private_key(demo_dir / "keys" / "mk-mvr.pem", expected="ed25519")
    async with HostileServer(64 * MIB, body=b'{"access_token": "') as server:
        base = server.url.removesuffix("/hook")
        sender = SenderClient(
            base, agency.private, agency.key_id("mk-mvr"), retries=0, max_answer_bytes=MIB
        )  # type: ignore[arg-type]
        async with sender:
            with pytest.raises(SenderError):
                await sender.post_notice(example("returnee-repatriation"))
        contact = RecipientClient(
            base,
            "mk-kumanovo-pcve",
            read_private_key(demo_dir / "keys" / "mk-kumanovo-pcve.pem"),
            read_private_key(demo_dir / "keys" / "mk-kumanovo-pcve.x25519.pem"),
            max_answer_bytes=MIB,
        )
        async with contact:
            with pytest.raises(RecipientError):
                await contact.token()
        for _ in range(100):  # until both answers ended on the server's side
            if len(server.sent) == 2:
                break
            server.answered.clear()
            await asyncio.wait_for(server.answered.wait(), 30)
    assert len(server.sent) == 2 and max(server.sent) < 16 * MIB, server.sent


# -- finding 10: bad input is a 4xx problem document, never a 500 or 503 -----------------------


async def _answer(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
        http.request(method, url, data=body, headers=headers) as response,
    ):
        text = await response.text()
        document = json.loads(text) if response.content_type == PROBLEM else {"raw": text}
        return response.status, response.content_type, document


async def _post_signed(broker: Broker, document: Any, **headers: str) -> tuple[int, str, dict]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    pair = broker.agency_key("mk-mvr")
    url = f"{broker.url}/v1/notices"
    signed = signed_headers(
        url, body, pair.private, pair.key_id("mk-mvr"), nonce=secrets.token_hex(8)
    )  # type: ignore[arg-type]
    return await _answer("POST", url, body=body, headers={**signed, **headers})


async def _refusals(broker: Broker) -> list[str]:
    rows = await broker.rows(
        "select body from audit_event where action = 'notice.refused' order by seq"
    )
    return [json.loads(r.body)["reason"] for r in rows]


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.fixture
async def broker(demo_dir: Path, database_url: str) -> AsyncIterator[Broker]:
    async with running_broker(demo_dir, database_url) as running:
        yield running


async def test_json_nested_50000_deep_is_a_400_before_it_is_parsed(
    broker: Broker, figures: Figures
) -> None:
    deep_notice = (
        json.dumps({**example("returnee-repatriation"), "body": {"x": 0}})
        .encode()
        .replace(b"0}", _nested(DEEP) + b"}")
    )
    status, kind, problem = await _post_signed(broker, deep_notice)
    assert (status, kind, problem["code"]) == (400, PROBLEM, "nesting_too_deep")
    assert await _refusals(broker) == ["nesting_too_deep"]  # refused after the signature: audited
    deep_token = b'{"grant_type": "x", "assertion": ' + _nested(DEEP) + b"}"
    # Unauthenticated at the token endpoint: an RFC 6749 invalid_request, still before parsing.
    status, kind, answer = await _answer(
        "POST",
        broker.url + "/v1/token",
        body=deep_token,
        headers={"Content-Type": "application/json"},
    )
    assert (status, kind, json.loads(answer["raw"])["error"]) == (
        400,
        "application/json",
        "invalid_request",
    )
    async with broker.recipient("mk-kumanovo-pcve") as pcve:  # authenticated
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {await pcve.token()}",
        }
    status, kind, problem = await _answer(
        "POST", broker.url + "/v1/notices/n/ack", body=deep_token, headers=headers
    )
    assert (status, kind, problem["code"]) == (400, PROBLEM, "nesting_too_deep")
    figures.bad_inputs += 3


def _assertion(data: Path, url: str, **claims: Any) -> str:
    pair = read_private_key(data / "keys" / "mk-kumanovo-pcve.pem", expected="ed25519")
    now = int(datetime.now(UTC).timestamp())
    payload = {
        "iss": "mk-kumanovo-pcve",
        "sub": "mk-kumanovo-pcve",
        "aud": f"{url}/v1/token",
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
        **claims,
    }
    headers = {"kid": pair.key_id("mk-kumanovo-pcve"), "typ": "JWT"}
    return jwt.encode(payload, pair.private, algorithm="EdDSA", headers=headers)  # type: ignore[arg-type]


def _deep_assertion(data: Path, url: str, depth: int) -> str:
    """A validly signed assertion whose claims hold a list ``depth`` deep (within the size cap)."""
    pair = read_private_key(data / "keys" / "mk-kumanovo-pcve.pem", expected="ed25519")
    plain = jwt.decode(_assertion(data, url), options={"verify_signature": False})
    payload = json.dumps(plain).encode()[:-1] + b', "x": ' + _nested(depth) + b"}"
    header = json.dumps({"alg": "EdDSA", "kid": pair.key_id("mk-kumanovo-pcve"), "typ": "JWT"})
    signing_input = _b64(header.encode()) + "." + _b64(payload)
    return signing_input + "." + _b64(pair.private.sign(signing_input.encode()))  # type: ignore[union-attr]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_token_claims_that_are_not_finite_numbers_get_the_one_invalid_grant(
    broker: Broker, figures: Figures
) -> None:
    url = broker.url
    bad_claims: list[dict[str, Any]] = [
        {"exp": float("nan")},
        {"exp": float("inf")},
        {"exp": float("-inf")},
        {"exp": True},
        {"exp": "9999999999"},
        {"exp": [1]},
        {"iat": float("nan")},
        {"iat": "yesterday"},
        {"iat": False},
        {"nbf": float("nan")},
        {"nbf": float("-inf")},
        {"nbf": {"a": 1}},
    ]
    async with aiohttp.ClientSession() as http:

        async def exchange(assertion: str) -> tuple[int, dict[str, Any]]:
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            }
            async with http.post(f"{url}/v1/token", data=form) as response:
                return response.status, await response.json(content_type=None)

        reference_status, reference = await exchange("not.a.token")
        assert (reference_status, reference["error"]) == (400, "invalid_grant")
        assert (await exchange(_assertion(broker.data, url)))[0] == 200  # the control: it works
        answers = [await exchange(_assertion(broker.data, url, **c)) for c in bad_claims]
        answers.append(await exchange(_deep_assertion(broker.data, url, 1_200)))
    figures.bad_inputs += len(answers)
    assert answers == [(400, reference)] * len(answers)


@pytest.mark.parametrize(
    "value",
    [
        "tomorrow",
        "2027-02-30T00:00:00Z",
        "20270101T000000Z",
        "2027-01-01 00:00:00Z",
        "2027-13-01T00:00:00Z",
    ],
)
async def test_an_expires_at_that_is_not_an_rfc3339_date_time_is_a_422_at_its_pointer(
    broker: Broker, value: str
) -> None:
    status, kind, problem = await _post_signed(
        broker, {**example("returnee-repatriation"), "expires_at": value}
    )
    assert (status, kind) == (422, PROBLEM), problem
    assert [v["pointer"] for v in problem["violations"]] == ["/expires_at"]
    assert await _refusals(broker) == ["payload_invalid"]


async def test_integers_beyond_64_bits_in_cursors_and_event_ids_are_a_400(
    broker: Broker, figures: Figures
) -> None:
    async with broker.recipient("mk-kumanovo-pcve") as pcve:
        token = await pcve.token()
    async with broker.recipient("mk-ombudsman-auditor") as auditor:
        audit_token = await auditor.token()
    cursor = base64.b64encode(f"d:{HUGE_NUMBER}".encode()).decode()
    cases = [
        ("/v1/inbox?cursor=" + cursor, token, {}),
        ("/v1/inbox?limit=" + HUGE_NUMBER, token, {}),
        ("/v1/stream", token, {"Last-Event-ID": HUGE_NUMBER}),
        ("/v1/stream?last_event_id=" + HUGE_NUMBER, token, {}),
        ("/v1/audit/events?cursor=" + HUGE_NUMBER, audit_token, {}),
        ("/v1/audit/events?limit=" + HUGE_NUMBER, audit_token, {}),
        (f"/v1/audit/proof/inclusion?seq={HUGE_NUMBER}&size=1", audit_token, {}),
        (f"/v1/audit/proof/consistency?first=1&second={HUGE_NUMBER}", audit_token, {}),
    ]
    answers = []
    for path, bearer, extra in cases:
        headers = {"Authorization": f"Bearer {bearer}", **extra}
        status, kind, problem = await _answer("GET", broker.url + path, headers=headers)
        answers.append((path, status, kind, problem.get("code")))
    figures.bad_inputs += len(cases)
    assert answers == [(path, 400, PROBLEM, "number_out_of_range") for path, _, _ in cases], answers


async def test_nul_bytes_and_oversize_keys_are_refused_before_the_store_and_audited(
    broker: Broker, figures: Figures
) -> None:
    notice = example("returnee-repatriation")
    signed_cases: list[tuple[dict[str, Any], dict[str, str], str]] = [
        ({**notice, "supersedes": "ntc_\x00"}, {}, "control_character"),
        ({**notice, "in_reply_to": "\x00"}, {}, "control_character"),
        ({**notice, "idempotency_key": "key\x00"}, {}, "control_character"),
        ({**notice, "body": {**notice["body"], "note\x00": 1}}, {}, "control_character"),
        (notice, {"Idempotency-Key": "k" * 300}, "idempotency_key_invalid"),
        (notice, {"Idempotency-Key": "tab\there"}, "idempotency_key_invalid"),
    ]
    answers = []
    for document, headers, _ in signed_cases:
        status, kind, problem = await _post_signed(broker, document, **headers)
        answers.append((status, kind, problem.get("code")))
    assert answers == [(400, PROBLEM, code) for _, _, code in signed_cases]
    assert await _refusals(broker) == [code for _, _, code in signed_cases]
    async with broker.recipient("mk-kumanovo-pcve") as pcve:
        bearer = {"Authorization": f"Bearer {await pcve.token()}"}
    unsigned = [
        ("GET", "/v1/notices/ntc_%00/status", {}),
        ("GET", "/v1/notices/ntc_%00", bearer),
        ("POST", "/v1/notices/ntc_%00/ack", bearer),
        ("GET", "/v1/inbox?channel=%00", bearer),
        ("GET", "/v1/inbox?status=%01", bearer),
    ]
    for method, path, headers in unsigned:
        status, kind, problem = await _answer(method, broker.url + path, headers=headers)
        answers.append((status, kind, problem.get("code")))
    figures.bad_inputs += len(answers)
    assert answers[len(signed_cases) :] == [(400, PROBLEM, "control_character")] * len(unsigned)


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65_536):
            answer += chunk
    return answer


async def test_a_header_over_the_limit_is_a_431_problem_that_echoes_nothing(
    demo_dir: Path, figures: Figures
) -> None:
    broker = BrokerProcess(demo_dir, {"LIAISON_LIMITS_MAX_HEADER_BYTES": "4096"})
    broker.start()
    try:
        await broker.ready()
        secret = b"SECRET-" + secrets.token_hex(8).encode()
        requests = [
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + secret + b"A" * 8_000 + b"\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-" + secret + b"B" * 8_000 + b": 1\r\n\r\n",
        ]
        answers = [await asyncio.to_thread(_raw_request, broker.port, r) for r in requests]
        malformed = await asyncio.to_thread(
            _raw_request,
            broker.port,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + secret + b"\r\n\r\n",
        )
    finally:
        broker.stop()
    figures.bad_inputs += len(answers) + 1
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"431", answer[:200]
        assert b"content-type: application/problem+json" in head.lower()
        assert json.loads(body)["code"] == "header_too_large"
        assert secret not in answer and b"AAAA" not in answer and b"BBBB" not in answer
    head, _, body = malformed.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and b"application/problem+json" in head
    assert json.loads(body)["code"] == "bad_request" and secret not in malformed
    assert secret.decode() not in broker.output()
