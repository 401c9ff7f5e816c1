"""A change of state reaches every delivery path (THREATS.md: "a former role holder").

A focal point replaced, an assignment ended, a key revoked: from that moment the former holder
gets nothing new — no delivery, wrap or e-mail of an update, no escalation that policy does not
allow, no working token, no open stream — and the successor gets what the role should. Each test
plays the former holder against a real broker on loopback, on SQLite and PostgreSQL, and changes
the directory the way an administrator does (`directory apply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller

from adapters.client.errors import RecipientError
from adapters.client.recipient import RecipientClient
from broker.clock import FrozenClock
from broker.http.keys import ESCALATION, OUTBOX
from broker.service.directory import apply_directory_file
from tests.integration.intake_support import (
    SUCCESSOR,
    SWC_HOLDER,
    Broker,
    example,
    hand_over_swc,
    running_broker,
)
from tests.support import free_port

PCVE, SWC, MAYOR = "mk-kumanovo-pcve", "mk-kumanovo-swc", "mk-kumanovo-mayor"
PCVE_HOLDER = "{role: mk-kumanovo.pcve-focal-point, contact: mk-kumanovo-pcve, as: holder, from: '2026-01-01T00:00:00Z'}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


def _z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


async def post(broker: Broker, clock: FrozenClock, notice: dict[str, Any] | None = None) -> str:
    async with broker.sender("mk-mvr", clock) as sender:
        answer = await sender.post_notice(notice or example("returnee-repatriation"))
    return str(answer.body["id"])


async def apply(broker: Broker, tmp_path: Path, text: str, clock: FrozenClock) -> None:
    changed = tmp_path / "directory-changed.yaml"
    changed.write_text(text)
    await apply_directory_file(
        broker.state.engine, changed, actor="test", now=clock.now(), max_bytes=10**7
    )
    assert await broker.state.refresh_directory()


def revoke_signing_key(broker: Broker, contact: str) -> str:
    keyid = broker.agency_key(contact).key_id(contact)
    text = (broker.data / "directory.yaml").read_text()
    line = next(line for line in text.splitlines() if f"id: {keyid}" in line)
    return text.replace(line, line.replace("status: active", "status: revoked"))


async def contacts_of(broker: Broker, notice_id: str) -> tuple[set[str], set[str]]:
    deliveries = await broker.rows(
        "select contact_id from delivery where notice_id = :n", n=notice_id
    )
    wraps = await broker.rows(
        "select recipient_id from notice_wrap where notice_id = :n", n=notice_id
    )
    return {r.contact_id for r in deliveries}, {r.recipient_id for r in wraps}


async def events(broker: Broker, action: str, notice_id: str) -> list[dict[str, Any]]:
    rows = await broker.rows(
        "select body from audit_event where action = :a and notice_id = :n order by seq",
        a=action,
        n=notice_id,
    )
    return [json.loads(r.body) for r in rows]


# -- updates, escalation and e-mail ask policy, against the directory as it is now ---------------


async def test_an_update_reaches_the_successor_and_never_the_former_holder(
    demo_dir: Path, database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    env = {"LIAISON_SMTP_HOST": "127.0.0.1", "LIAISON_SMTP_PORT": str(free_port())}
    async with running_broker(demo_dir, database_url, clock=clock, env=env) as broker:
        first = await post(broker, clock)
        await apply(
            broker, tmp_path, hand_over_swc(broker, clock.now() + timedelta(hours=1)), clock
        )
        clock.advance(timedelta(hours=2))
        update = await post(
            broker, clock, {**example("returnee-repatriation"), "supersedes": first}
        )
        delivered, wrapped = await contacts_of(broker, update)
        assert delivered == {PCVE, SUCCESSOR} and SWC not in wrapped
        mailed = {
            r.target
            for r in await broker.rows("select target from outbox where notice_id = :n", n=update)
        }
        assert mailed == {"pcve@mk-kumanovo.demo.invalid", "swc2@mk-kumanovo.demo.invalid"}
        async with broker.recipient(SUCCESSOR, clock) as successor:
            assert (await successor.read(update)).notice["supersedes"] == first
        async with broker.recipient(SWC, clock) as former:
            with pytest.raises(RecipientError) as caught:
                await former.read(update)
            assert caught.value.status == 401  # no role left: the token itself is refused
        (routed,) = await events(broker, "notice.routed", update)
        recipients = routed["details"]["recipients"]
        assert {r["contact"] for r in recipients} == {PCVE, SUCCESSOR}
        assert routed["decision"] == "allow" and all(r["policies"] for r in recipients)


async def test_escalation_asks_policy_and_a_forbid_keeps_the_mayor_out(
    demo_dir: Path, database_url: str, clock: FrozenClock
) -> None:
    (demo_dir / "policies" / "test-no-mayors.cedar").write_text(
        '@id("test/no-mayors")\n'
        'forbid (principal is Liaison::Role, action == Liaison::Action::"receive", resource)\n'
        'when { principal.kind == "mayor" };\n'
    )
    async with running_broker(demo_dir, database_url, clock=clock) as broker:
        notice_id = await post(broker, clock)
        clock.advance(timedelta(hours=25))
        assert (await broker.app[ESCALATION].tick(clock.now())).escalated == 0
        delivered, wrapped = await contacts_of(broker, notice_id)
        assert MAYOR not in delivered and MAYOR not in wrapped
        (demo_dir / "policies" / "test-no-mayors.cedar").unlink()
        await broker.state.reload_policies()
        assert (await broker.app[ESCALATION].tick(clock.now())).escalated == 1
        escalated = await events(broker, "notice.escalated", notice_id)
        assert {e["details"]["contact"] for e in escalated} == {MAYOR}
        assert all("channel/returnee-repatriation/escalation" in e["policies"] for e in escalated)


class Mailbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients += envelope.rcpt_tos
        return "250 OK"


async def test_an_email_still_pending_when_the_assignment_ends_is_never_sent(
    demo_dir: Path, database_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    port, mailbox = free_port(), Mailbox()
    env = {
        "LIAISON_SMTP_HOST": "127.0.0.1",
        "LIAISON_SMTP_PORT": str(port),
        "LIAISON_SMTP_SECURITY": "none",
    }
    async with running_broker(demo_dir, database_url, clock=clock, env=env) as broker:
        notice_id = await post(broker, clock)  # e-mail rows for both holders, not sent yet
        ended = clock.now() + timedelta(minutes=1)
        text = (broker.data / "directory.yaml").read_text()
        await apply(
            broker,
            tmp_path,
            text.replace(SWC_HOLDER, SWC_HOLDER.replace("'}", f"', until: '{_z(ended)}'}}")),
            clock,
        )
        clock.advance(timedelta(minutes=2))
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            assert await broker.app[OUTBOX].tick(clock.now()) == 2
        finally:
            controller.stop()
        dropped = await events(broker, "email.dropped", notice_id)
    assert mailbox.recipients == ["pcve@mk-kumanovo.demo.invalid"]
    assert len(dropped) == 1


# -- access ends when the right ends: tokens and open streams -----------------------------------


class Stream:
    """One live stream of a contact, read in the background until the broker ends it."""

    def __init__(self, client: RecipientClient, *, follow: bool = False) -> None:
        self.client, self.follow = client, follow
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        await self.client.__aenter__()
        await self.client.token()
        source = self.client.follow() if self.follow else self.client.watch()

        async def run() -> None:
            async for event in source:
                self.events.append(event)

        self.task = asyncio.create_task(run())
        await asyncio.sleep(0.3)  # the stream is subscribed once the request is in
        return self

    async def wait_for(self, count: int, seconds: float = 10) -> None:
        async with asyncio.timeout(seconds):
            while len(self.events) < count:  # noqa: ASYNC110 - polls a list filled by another task
                await asyncio.sleep(0.02)

    async def ended(self, seconds: float = 15) -> None:
        """The broker closed the stream (the reading task finished by itself)."""
        assert self.task is not None
        await asyncio.wait_for(asyncio.shield(self.task), seconds)

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RecipientError):
            await self.task
        await self.client.__aexit__()


@pytest.fixture
async def broker(demo_dir: Path, database_url: str, clock: FrozenClock) -> AsyncIterator[Broker]:
    env = {"LIAISON_DELIVERY_STREAM_RECHECK_SECONDS": "1"}
    async with running_broker(demo_dir, database_url, clock=clock, env=env) as running:
        yield running


async def test_a_revoked_keys_token_gets_401_and_its_open_stream_ends(
    broker: Broker, clock: FrozenClock, tmp_path: Path
) -> None:
    async with Stream(broker.recipient(PCVE, clock)) as stream:
        await post(broker, clock)
        await stream.wait_for(1)
        await apply(broker, tmp_path, revoke_signing_key(broker, PCVE), clock)
        await stream.ended()
        with pytest.raises(RecipientError) as caught:
            await stream.client.inbox()  # the same token that worked a moment ago
        assert caught.value.status == 401
    assert len(stream.events) == 1


async def test_an_ended_assignment_ends_an_open_stream(
    broker: Broker, clock: FrozenClock, tmp_path: Path
) -> None:
    async with Stream(broker.recipient(PCVE, clock)) as stream:
        text = (broker.data / "directory.yaml").read_text()
        ended = PCVE_HOLDER.replace("'}", f"', until: '{_z(clock.now())}'}}")
        await apply(broker, tmp_path, text.replace(PCVE_HOLDER, ended), clock)
        await stream.ended()
        await post(broker, clock)  # goes to the deputy now, never down the closed stream
    assert stream.events == []


async def test_a_stream_ends_at_its_tokens_expiry_and_the_client_resumes_without_a_gap(
    broker: Broker, clock: FrozenClock
) -> None:
    async with Stream(broker.recipient(PCVE, clock)) as plain:
        clock.advance(timedelta(minutes=16))  # past the 15-minute token
        await plain.ended()
    async with Stream(broker.recipient(PCVE, clock), follow=True) as follower:
        first = await post(broker, clock)
        await follower.wait_for(1)
        clock.advance(timedelta(minutes=16))
        await asyncio.sleep(2.5)  # the stream ends at its recheck; the client takes a new token
        second = await post(broker, clock)
        await follower.wait_for(2)
    assert [e[1]["notice_id"] for e in follower.events] == [first, second]


async def drain(client: RecipientClient) -> None:
    async with asyncio.timeout(10):  # an accepted stream would not end by itself
        async for _ in client.watch():
            pass


async def test_one_contact_may_hold_only_so_many_streams(
    demo_dir: Path, database_url: str, clock: FrozenClock
) -> None:
    env = {"LIAISON_DELIVERY_MAX_STREAMS_PER_CONTACT": "2"}
    async with (
        running_broker(demo_dir, database_url, clock=clock, env=env) as broker,
        Stream(broker.recipient(PCVE, clock)),
        Stream(broker.recipient(PCVE, clock)),
    ):
        async with broker.recipient(PCVE, clock) as third:
            with pytest.raises(RecipientError) as caught:
                await drain(third)
            assert caught.value.status == 429
        async with broker.recipient(SWC, clock) as other, aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {await other.token()}"}
            async with http.get(f"{broker.url}/v1/stream", headers=headers) as response:
                assert response.status == 200  # the cap is per contact


# -- the audit log names the request that caused each event -------------------------------------


async def test_delivered_marks_carry_the_request_that_showed_them(
    broker: Broker, clock: FrozenClock
) -> None:
    notice_id = await post(broker, clock)
    async with aiohttp.ClientSession() as http:
        for contact, request_id in ((PCVE, "inbox-pcve-0001"), (SWC, "inbox-swc-00002")):
            async with broker.recipient(contact, clock) as client:
                headers = {
                    "Authorization": f"Bearer {await client.token()}",
                    "X-Request-Id": request_id,
                }
                async with http.get(f"{broker.url}/v1/inbox", headers=headers) as response:
                    assert response.status == 200
    marks = await events(broker, "delivery.delivered", notice_id)
    assert {(m["actor"], m["request"]) for m in marks} == {
        (f"contact:{PCVE}", "inbox-pcve-0001"),
        (f"contact:{SWC}", "inbox-swc-00002"),
    }
