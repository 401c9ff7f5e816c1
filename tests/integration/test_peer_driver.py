"""The driver that POSTs a crossing to a peer broker, against a real server on loopback: a
refusal brings the peer's reason (escaped and bounded: the peer is another country's broker, and
its words reach our operator's terminal and our agency's status), a pause its Retry-After."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from adapters.delivery.peer import REASON_AT_MOST, PeerDriver
from tests.support import free_port

ANSWERS: dict[str, web.Response] = {}


@pytest.fixture
async def peer() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        return ANSWERS[request.match_info["case"]]

    app = web.Application()
    app.router.add_post("/{case}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def problem(status: int, **fields: object) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(fields), content_type="application/problem+json"
    )


async def test_a_refusal_brings_the_peers_reason_escaped_and_bounded(peer: str) -> None:
    ANSWERS.update(
        {
            "agreement": problem(403, detail="refused", reason="no agreement with mk for x"),
            "detail": problem(422, detail="a forwarded notice needs ciphertext"),
            "terminal": problem(403, reason="\x1b[2J\x1b]0;owned\x07" + "A" * 1000),
            "huge": problem(403, reason="B" * 5000),  # past the 4 KiB read: no reason at all
            "not-json": web.Response(status=400, text="<html>nope</html>"),
            "pause": web.Response(status=429, headers={"Retry-After": "7"}),
            "ok": web.Response(status=202),
        }
    )
    driver = PeerDriver()
    try:

        async def sent(case: str) -> tuple[int | None, str | None, float | None, bool]:
            r = await driver.post(f"{peer}/{case}", {}, b"{}", seconds=5)
            return r.status, r.error, r.retry_after, r.refused

        assert await sent("agreement") == (403, "HTTP 403: no agreement with mk for x", None, True)
        assert await sent("detail") == (
            422,
            "HTTP 422: a forwarded notice needs ciphertext",
            None,
            True,
        )
        status, error, _, refused = await sent("terminal")
        assert status == 403 and refused and error is not None
        assert (
            "\x1b" not in error and "\x07" not in error and error.startswith("HTTP 403: \\u001b[2J")
        )
        assert len(error) <= len("HTTP 403: ") + REASON_AT_MOST <= 300  # the outbox row's column
        assert await sent("huge") == (403, "HTTP 403", None, True)
        assert await sent("not-json") == (400, "HTTP 400", None, True)
        assert await sent("pause") == (429, "HTTP 429", 7.0, False)  # later, not refused
        assert await sent("ok") == (202, None, None, False)
    finally:
        await driver.close()
