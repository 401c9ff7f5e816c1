"""Focal points receive: the story of the recipient issue, end to end on a real broker.

An agency posts for Kumanovo; Kumanovo's P/CVE focal point and social-welfare centre receive it
live, decrypt it and verify the agency's signature; Sarajevo sees nothing; acknowledgements reach
the sender; without one the mayor receives it after the deadline; a successor receives open
notices; a resumed stream misses nothing and repeats nothing. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.client.errors import RecipientError
from adapters.client.recipient import RecipientClient
from adapters.client.sender import decrypt_reply
from broker.clock import FrozenClock
from broker.crypto.keys import read_private_key
from broker.http.keys import ESCALATION
from broker.service.directory import apply_directory_file
from tests.integration.intake_support import (
    SUCCESSOR,
    Broker,
    example,
    hand_over_swc,
    running_broker,
)

PCVE, SWC, MAYOR, SARAJEVO = (
    "mk-kumanovo-pcve",
    "mk-kumanovo-swc",
    "mk-kumanovo-mayor",
    "ba-fbih-ks-sarajevo-pcve",
)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def broker(demo_dir: Path, database_url: str, clock: FrozenClock) -> AsyncIterator[Broker]:
    async with running_broker(demo_dir, database_url, clock=clock) as running:
        yield running


async def post(
    broker: Broker, clock: FrozenClock, notice: dict[str, Any] | None = None, agency: str = "mk-mvr"
) -> str:
    async with broker.sender(agency, clock) as sender:
        return str(
            (await sender.post_notice(notice or example("returnee-repatriation"))).body["id"]
        )


class Watcher:
    """Collects a contact's live events in the background."""

    def __init__(self, client: RecipientClient, last_event_id: int | None = None) -> None:
        self.client, self.events, self.last = client, [], last_event_id
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        await self.client.__aenter__()
        await self.client.token()

        async def run() -> None:
            async for event_id, data in self.client.watch(last_event_id=self.last):
                self.events.append((event_id, data))

        self.task = asyncio.create_task(run())
        await asyncio.sleep(0.3)  # the stream is subscribed once the request is in
        return self

    async def wait_for(self, count: int, seconds: float = 10) -> None:
        async with asyncio.timeout(seconds):
            while len(self.events) < count:  # noqa: ASYNC110 - polls a list filled by another task
                await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RecipientError):
            await self.task
        await self.client.__aexit__()


async def test_kumanovo_receives_live_decrypts_and_verifies_sarajevo_sees_nothing(
    broker: Broker, clock: FrozenClock
) -> None:
    async with (
        Watcher(broker.recipient(PCVE, clock)) as pcve,
        Watcher(broker.recipient(SWC, clock)) as swc,
        Watcher(broker.recipient(SARAJEVO, clock)) as sarajevo,
    ):
        notice_id = await post(broker, clock)
        await pcve.wait_for(1)
        await swc.wait_for(1)
        assert sarajevo.events == []  # the hub fans out in one step: Sarajevo would have it by now
    for watcher in (pcve, swc):
        [(_, event)] = watcher.events
        assert event["notice_id"] == notice_id and event["marking"] == "AMBER+STRICT"
        assert "subject" not in event and "body" not in event  # metadata only
    async with broker.recipient(PCVE, clock) as client:
        verified = await client.read(notice_id)
    assert verified.notice == example("returnee-repatriation")
    assert verified.metadata["sender_name"] == "Ministry of Interior of North Macedonia"
    async with broker.recipient(SARAJEVO, clock) as client:
        assert (await client.inbox())["items"] == []
        with pytest.raises(RecipientError) as caught:
            await client.read(notice_id)
        assert caught.value.status == 404
        with pytest.raises(RecipientError) as missing:
            await client.read("0" * 32)
        assert missing.value.problem["detail"] == caught.value.problem["detail"]


async def test_a_tampered_ciphertext_or_signature_is_refused_loudly(
    broker: Broker, clock: FrozenClock
) -> None:
    from adapters.client.errors import VerificationFailed

    notice_id = await post(broker, clock)
    async with broker.recipient(PCVE, clock) as client:
        fetched = await client._request("GET", f"/v1/notices/{notice_id}")
        bindings = await client.key_bindings()
        client.verify(fetched, bindings)  # untouched: fine
        ciphertext = bytearray(base64.b64decode(fetched["encryption"]["ciphertext"]))
        ciphertext[5] ^= 1
        bad = {
            **fetched,
            "encryption": {
                **fetched["encryption"],
                "ciphertext": base64.b64encode(bytes(ciphertext)).decode(),
            },
        }
        with pytest.raises(VerificationFailed, match="does not decrypt"):
            client.verify(bad, bindings)
        signature = fetched["signature"]["signature"]
        flipped = signature[:-4] + ("AAA=" if signature[-4:] != "AAA=" else "BBB=")
        forged = {**fetched, "signature": {**fetched["signature"], "signature": flipped}}
        with pytest.raises(VerificationFailed, match="signature"):
            client.verify(forged, bindings)
        # The key the broker serves is not what the client checks against: swapping it changes nothing.
        swapped = {
            **fetched,
            "signature": {
                **fetched["signature"],
                "sender_public_key": base64.b64encode(bytes(32)).decode(),
            },
        }
        client.verify(swapped, bindings)
        relabelled = {**fetched, "severity": "low"}
        with pytest.raises(VerificationFailed):
            client.verify(relabelled, bindings)


async def test_acknowledgement_is_signed_recorded_and_visible_to_the_sender(
    broker: Broker, clock: FrozenClock
) -> None:
    notice_id = await post(broker, clock)
    async with broker.recipient(PCVE, clock) as client:
        fetched = await client._request("GET", f"/v1/notices/{notice_id}")
        key = fetched["reply_key"]
        answer = await client.ack(
            notice_id,
            reply="Schools notified.",
            agency_key=(key["key_id"], base64.b64decode(key["public"])),
        )
        again = await client.ack(notice_id)
        assert again["acknowledged_at"] == answer["acknowledged_at"]
        bad = {
            "key_id": client.signing.key_id(PCVE),
            "signature": base64.b64encode(bytes(64)).decode(),
        }
        with pytest.raises(RecipientError) as caught:
            await client._request("POST", f"/v1/notices/{notice_id}/ack", json_body=bad)
        assert caught.value.status == 422
    async with broker.sender("mk-mvr", clock) as sender:
        status = (await sender.status(notice_id)).body
    states = {r["role"]: r["state"] for r in status["roles"]}
    assert states == {
        "mk-kumanovo.pcve-focal-point": "acknowledged",
        "mk-kumanovo.social-welfare-centre": "pending",
    }
    [reply] = status["replies"]
    agency_x25519 = read_private_key(broker.data / "keys" / "mk-mvr.x25519.pem").private_raw
    assert decrypt_reply(reply, notice_id, agency_x25519) == "Schools notified."
    async with broker.recipient(SARAJEVO, clock) as client:
        with pytest.raises(RecipientError) as caught:
            await client._request("POST", f"/v1/notices/{notice_id}/ack", json_body=bad)
        assert caught.value.status == 404


async def test_without_acknowledgement_the_mayor_receives_it_after_the_deadline(
    broker: Broker, clock: FrozenClock
) -> None:
    notice_id = await post(broker, clock)
    async with broker.recipient(PCVE, clock) as client:
        await client.ack(notice_id)  # one acknowledges, the other does not
    worker = broker.app[ESCALATION]
    clock.advance(timedelta(hours=23))
    assert (await worker.tick(clock.now())).escalated == 0
    async with Watcher(broker.recipient(MAYOR, clock)) as mayor:
        clock.advance(timedelta(hours=2))
        result = await worker.tick(clock.now())
        assert result.escalated == 1
        await mayor.wait_for(1)
        assert (await worker.tick(clock.now())).escalated == 0  # once only
    async with broker.recipient(MAYOR, clock) as client:
        verified = await client.read(notice_id)  # re-wrapped from escrow: the mayor can decrypt it
    assert verified.notice["subject"] == example("returnee-repatriation")["subject"]
    async with broker.sender("mk-mvr", clock) as sender:
        roles = {r["role"]: r["state"] for r in (await sender.status(notice_id)).body["roles"]}
    assert roles == {
        "mk-kumanovo.pcve-focal-point": "acknowledged",
        "mk-kumanovo.social-welfare-centre": "escalated",
        "mk-kumanovo.mayor": "read",
    }


async def test_a_successor_receives_open_notices_and_the_predecessor_loses_access(
    broker: Broker, clock: FrozenClock, tmp_path: Path
) -> None:
    notice_id = await post(broker, clock)
    successor = SUCCESSOR
    text = hand_over_swc(broker, clock.now() + timedelta(hours=1))
    changed = tmp_path / "directory.yaml"
    changed.write_text(text)
    await apply_directory_file(
        broker.state.engine, changed, actor="test", now=clock.now(), max_bytes=10**7
    )
    await broker.state.refresh_directory()
    worker = broker.app[ESCALATION]
    assert (await worker.tick(clock.now())).succeeded == 0  # not yet handed over
    clock.advance(timedelta(hours=2))
    assert (await worker.tick(clock.now())).succeeded == 1
    async with broker.recipient(successor, clock) as client:
        assert (await client.read(notice_id)).notice["channel"] == "returnee-repatriation"
    async with broker.recipient(SWC, clock) as client:
        with pytest.raises(
            RecipientError
        ) as caught:  # the predecessor's key may still work, the role is gone
            await client.read(notice_id)
        assert caught.value.status in (401, 404)


async def test_a_resumed_stream_misses_nothing_and_repeats_nothing(
    broker: Broker, clock: FrozenClock
) -> None:
    async with Watcher(broker.recipient(PCVE, clock)) as first:
        await post(broker, clock)
        await first.wait_for(1)
    last_seen = first.events[-1][0]
    missed = [await post(broker, clock) for _ in range(3)]  # while disconnected
    async with Watcher(broker.recipient(PCVE, clock), last_event_id=last_seen) as second:
        await second.wait_for(3)
        live = await post(broker, clock)
        await second.wait_for(4)
        await asyncio.sleep(0.2)
    ids = [e[0] for e in second.events]
    assert [e[1]["notice_id"] for e in second.events] == [*missed, live]
    assert len(ids) == len(set(ids)) and min(ids) > last_seen


async def test_inbox_pages_and_filters(broker: Broker, clock: FrozenClock) -> None:
    ids = [await post(broker, clock) for _ in range(5)]
    async with broker.recipient(PCVE, clock) as client:
        first = await client.inbox(limit=2)
        second = await client.inbox(limit=2, cursor=first["next_cursor"])
        third = await client.inbox(limit=2, cursor=second["next_cursor"])
        seen = [i["notice_id"] for page in (first, second, third) for i in page["items"]]
        assert seen == list(reversed(ids)) and third["next_cursor"] is None
        await client.ack(ids[0])
        assert [i["notice_id"] for i in (await client.inbox(status="acknowledged"))["items"]] == [
            ids[0]
        ]
        assert (await client.inbox(channel="hate-incident"))["items"] == []
        with pytest.raises(RecipientError) as caught:
            await client.inbox(cursor="not-a-cursor")
        assert caught.value.status == 422


async def test_an_ended_assignment_ends_access_at_once(
    broker: Broker, clock: FrozenClock, tmp_path: Path
) -> None:
    notice_id = await post(broker, clock)
    async with broker.recipient(PCVE, clock) as client:
        await client.read(notice_id)
        text = (broker.data / "directory.yaml").read_text()
        old = "{role: mk-kumanovo.pcve-focal-point, contact: mk-kumanovo-pcve, as: holder, from: '2026-01-01T00:00:00Z'}"
        ended = (clock.now() - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        changed = tmp_path / "directory.yaml"
        changed.write_text(text.replace(old, old.replace("'}", f"', until: '{ended}'}}")))
        await apply_directory_file(
            broker.state.engine, changed, actor="test", now=clock.now(), max_bytes=10**7
        )
        await broker.state.refresh_directory()
        # Same token, same key: the contact holds no role any more, so the token ends with it.
        for call in (client.read(notice_id), client.inbox()):
            with pytest.raises(RecipientError) as caught:
                await call
            assert caught.value.status == 401


async def test_expiry_destroys_ciphertext_and_every_wrap_and_reading_answers_410(
    broker: Broker, clock: FrozenClock
) -> None:
    from broker.http.keys import SHREDDER

    expires = (clock.now() + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    notice_id = await post(
        broker, clock, {**example("returnee-repatriation"), "expires_at": expires}
    )
    kept = await post(broker, clock)  # no expiry: kept until the end of retention
    async with broker.recipient(PCVE, clock) as client:
        await client.read(notice_id)
    shredder = broker.app[SHREDDER]
    assert await shredder.tick(clock.now()) == 0
    clock.advance(timedelta(hours=3))
    assert await shredder.tick(clock.now()) == 1
    [row] = await broker.rows(
        "select ciphertext, aead_nonce, status from notice where id = :id", id=notice_id
    )
    assert (row.ciphertext, row.aead_nonce, row.status) == (None, None, "shredded")
    assert (
        await broker.scalar("select count(*) from notice_wrap where notice_id = :id", id=notice_id)
        == 0
    )
    assert (
        await broker.scalar("select count(*) from notice_wrap where notice_id = :id", id=kept) == 3
    )
    async with broker.recipient(PCVE, clock) as client:
        with pytest.raises(RecipientError) as caught:
            await client.read(notice_id)
        assert caught.value.status == 410
        assert caught.value.problem["type"].endswith("/gone")
    [event] = await broker.rows("select body from audit_event where action = 'notice.shredded'")
    import json as _json

    record = _json.loads(event.body)
    assert record["reason"] == "expired" and record["object"] == f"notice:{notice_id}"
    assert set(record["details"]["destroyed_sha256"]) == {
        "ciphertext",
        f"wrap:{PCVE}",
        f"wrap:{SWC}",
        "wrap:broker-escrow",
    }
    async with broker.sender("mk-mvr", clock) as sender:
        assert (await sender.status(notice_id)).body["status"] == "shredded"
    clock.advance(timedelta(days=366))  # the channel keeps returnee notices for 365 days
    assert await shredder.tick(clock.now()) == 1
    reasons = [
        r.body
        for r in await broker.rows("select body from audit_event where action = 'notice.retention'")
    ]
    assert len(reasons) == 1 and kept in reasons[0]
