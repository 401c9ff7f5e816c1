"""Webhooks and e-mail alerts against real local counterparts, through their failure modes."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook as ReferenceVerifier

from broker.clock import FrozenClock
from broker.crypto.httpsig import ed25519_verify
from broker.http.keys import OUTBOX
from tests.integration.intake_support import Broker, example, running_broker
from tests.support import free_port

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class Receiver:
    """A webhook receiver on loopback whose answers follow a script, then 200."""

    def __init__(self, script: list[str] | None = None, port: int | None = None) -> None:
        self.script = list(script or [])
        self.port = port or free_port()
        self.received: list[tuple[dict[str, str], bytes, str]] = []  # headers, body, answer
        self.in_flight = 0
        self.arrived: list[float] = []  # time.monotonic() of each request's arrival
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.script.pop(0) if self.script else "ok"
        self.arrived.append(time.monotonic())
        self.in_flight += 1
        try:
            if answer == "hang":
                await asyncio.sleep(2.5)
            self.received.append(({k.lower(): v for k, v in request.headers.items()}, body, answer))
            return {
                "500": web.Response(status=500),
                "410": web.Response(status=410),
                "503": web.Response(status=503, headers={"Retry-After": "4"}),
            }.get(answer, web.Response(status=204))
        finally:
            self.in_flight -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def delivered_ids(self) -> list[str]:
        return [h["webhook-id"] for h, _, answer in self.received if answer in ("ok", "hang")]


def add_webhooks(data: Path, hooks: dict[str, str]) -> None:
    """Declare a webhook on demo contacts: {contact id: 'url|secret-ref-or-empty'}."""
    lines = (data / "directory.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        for contact, spec in hooks.items():
            if line.startswith(f"  - {{id: {contact}, "):
                url, _, secret = spec.partition("|")
                hook = (
                    f"{{id: {contact}-hook, url: '{url}'"
                    + (f", secret: '{secret}'" if secret else "")
                    + "}"
                )
                lines[i] = line[:-1] + f", webhooks: [{hook}]}}"
    (data / "directory.yaml").write_text("\n".join(lines) + "\n")


ENV = {
    "WH_SECRET": SECRET,
    "LIAISON_WEBHOOKS_TIMEOUT_SECONDS": "1",
    "LIAISON_WEBHOOKS_BACKOFF_SECONDS": "1",
    "LIAISON_WEBHOOKS_MAX_ATTEMPTS": "6",
}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


async def post(broker: Broker, clock: FrozenClock) -> str:
    async with broker.sender("mk-mvr", clock) as sender:
        return str((await sender.post_notice(example("returnee-repatriation"))).body["id"])


async def test_webhooks_retry_through_failures_and_arrive_exactly_once(
    demo_dir: Path, database_url: str, clock: FrozenClock
) -> None:
    flaky = Receiver(["500", "503", "hang"])  # and before all that, it refuses connections
    steady = Receiver()
    add_webhooks(
        demo_dir, {"mk-kumanovo-pcve": f"{flaky.url}|env:WH_SECRET", "mk-kumanovo-swc": steady.url}
    )
    await steady.start()
    try:
        async with running_broker(demo_dir, database_url, clock=clock, env=ENV) as broker:
            outbox = broker.app[OUTBOX]
            first = await post(broker, clock)
            assert (
                await outbox.tick(clock.now()) == 2
            )  # flaky: connection refused; steady: delivered
            await flaky.start()
            for _ in range(2):  # 500, then 503 with Retry-After: 4
                clock.advance(timedelta(seconds=3))
                assert await outbox.tick(clock.now()) == 1
            clock.advance(timedelta(seconds=2))
            assert await outbox.tick(clock.now()) == 0  # Retry-After honoured: not yet
            clock.advance(timedelta(seconds=3))
            second = await post(
                broker, clock
            )  # its webhooks go out in the same round as the hanging one
            assert await outbox.tick(clock.now()) == 3
            clock.advance(timedelta(seconds=30))
            assert await outbox.tick(clock.now()) == 1  # the timed-out one, retried
            await asyncio.sleep(
                2
            )  # let the abandoned hanging request finish on the receiver's side
            rows = await broker.rows(
                "select notice_id, target, state, attempts from outbox order by id"
            )
            events = [
                r.action
                for r in await broker.rows(
                    "select action from audit_event where action like 'webhook.%'"
                )
            ]
    finally:
        await flaky.stop()
        await steady.stop()
    assert {(r.target, r.state) for r in rows} == {
        ("mk-kumanovo-pcve-hook", "sent"),
        ("mk-kumanovo-swc-hook", "sent"),
    }
    # refused, 500, 503, a hang and a success, shared between the two notices' calls to the flaky one
    # (whichever reached it first in the hanging round got the hang)
    flaky_attempts = {r.notice_id: r.attempts for r in rows if r.target == "mk-kumanovo-pcve-hook"}
    assert sum(flaky_attempts.values()) == 6 and flaky_attempts[first] >= 4
    assert events.count("webhook.delivered") == 4
    # Exactly once per message after de-duplication by webhook-id, however often it was sent.
    assert sorted(set(flaky.delivered_ids())) == sorted(
        {h["webhook-id"] for h, _, _ in flaky.received}
    )
    assert len(set(flaky.delivered_ids())) == 2 and len(steady.delivered_ids()) == 2
    # steady was called in the hanging round without waiting for the hang to time out (1 s): a
    # sender that held it up behind the hanging call would call it a timeout after that call began
    hang_began = flaky.arrived[2]  # its answers: 500, 503, then the hang
    assert abs(max(steady.arrived) - hang_began) < 0.5
    for headers, body, _ in flaky.received:
        payload = ReferenceVerifier(SECRET).verify(
            body, headers
        )  # the reference verifier accepts it
        assert payload["data"]["notice_id"] in (first, second) and "subject" not in json.dumps(
            payload
        )
    broker_public = broker.purpose_key("webhooks").public_raw
    for headers, body, _ in steady.received:
        version, signature = headers["webhook-signature"].split(",")
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        assert version == "v1a" and ed25519_verify(
            broker_public, signed, base64.b64decode(signature)
        )


async def test_gone_disables_and_failures_dead_letter_with_an_alert(
    demo_dir: Path, database_url: str, clock: FrozenClock
) -> None:
    broken, gone = Receiver(["500"] * 20), Receiver(["410"])
    add_webhooks(demo_dir, {"mk-kumanovo-pcve": broken.url, "mk-kumanovo-swc": gone.url})
    await broken.start()
    await gone.start()
    try:
        async with running_broker(demo_dir, database_url, clock=clock, env=ENV) as broker:
            outbox = broker.app[OUTBOX]
            await post(broker, clock)
            for _ in range(8):
                await outbox.tick(clock.now())
                clock.advance(timedelta(seconds=40))
            await post(broker, clock)  # the disabled endpoint is not called again
            await outbox.tick(clock.now())
            rows = await broker.rows("select target, state, attempts from outbox order by id")
            actions = [
                r.action
                for r in await broker.rows(
                    "select action from audit_event where action like 'webhook.%'"
                )
            ]
            disabled = await broker.rows("select endpoint_id from webhook_disabled")
    finally:
        await broken.stop()
        await gone.stop()
    assert ("mk-kumanovo-pcve-hook", "dead", 6) in {(r.target, r.state, r.attempts) for r in rows}
    assert [d.endpoint_id for d in disabled] == ["mk-kumanovo-swc-hook"]
    assert actions.count("webhook.dead_lettered") == 1 and actions.count("webhook.disabled") == 1
    assert "webhook.dropped" in actions
    assert (
        len(gone.received) == 1 and len(broken.received) == 6 + 1
    )  # 6 attempts, then the next notice's first


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


async def test_email_alerts_are_content_free_localised_and_retried(
    demo_dir: Path, database_url: str, clock: FrozenClock
) -> None:
    port = free_port()
    mailbox = Mailbox()
    env = {
        **ENV,
        "LIAISON_SMTP_HOST": "127.0.0.1",
        "LIAISON_SMTP_PORT": str(port),
        "LIAISON_SMTP_SECURITY": "none",
        "LIAISON_SMTP_FROM_ADDRESS": "liaison@broker.invalid",
    }
    async with running_broker(demo_dir, database_url, clock=clock, env=env) as broker:
        outbox = broker.app[OUTBOX]
        notice_id = await post(broker, clock)
        assert (
            await outbox.tick(clock.now()) == 2
        )  # the SMTP server is down: both fail, to be retried
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            clock.advance(timedelta(seconds=5))
            assert await outbox.tick(clock.now()) == 2
        finally:
            controller.stop()
        states = {r.target: r.state for r in await broker.rows("select target, state from outbox")}
    assert states == {
        "pcve@mk-kumanovo.demo.invalid": "sent",
        "swc@mk-kumanovo.demo.invalid": "sent",
    }
    assert sorted(m.rcpt_tos[0] for m in mailbox.messages) == sorted(states)
    from email import message_from_bytes, policy

    for envelope in mailbox.messages:
        message = message_from_bytes(envelope.content, policy=policy.default)
        text = message.get_content()
        assert (
            message["Subject"] == "Liaison: ве чека ново известување"
        )  # Kumanovo's contacts read Macedonian
        # The link opens this notice in the web inbox (a page), not the JSON API.
        assert "TLP:AMBER+STRICT" in text and f"{broker.url}/ui/#/notice/{notice_id}\n" in text
        assert "/v1/" not in text
        for secret_text in ("Repatriation", "Kumanovo", "returnee", "psychosocial"):
            assert secret_text not in text
