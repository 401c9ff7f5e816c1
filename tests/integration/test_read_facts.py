"""A read is decided on every fact routing was decided on.

Policy sees a notice's ``addressees`` and ``reply_to_roles`` (policies/README.md). Intake
decides routing with both; every later decision about the notice — the inbox, a read, the
stream's backlog, live push — must see them too, or a policy written on them holds at routing
and not after: a forbid on reading added once notices were delivered (the policy changed after
routing: THREATS.md, a recipient whose access must end at once) would leave them readable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.client.recipient import RecipientClient, RecipientError
from tests.integration.intake_support import Broker, example, running_broker

FORBIDS = """
@id("test/no-low-requests-to-the-ministry")
forbid (principal is Liaison::Contact, action == Liaison::Action::"read_notice", resource)
when { resource.addressees.contains(Liaison::Organisation::"al-mb") && resource.severity == "low" };

@id("test/no-low-answers-to-shkoder")
forbid (principal is Liaison::Contact, action == Liaison::Action::"read_notice", resource)
when {
  resource.reply_to_roles.contains(Liaison::Role::"al-shkoder.pcve-focal-point")
  && resource.severity == "low"
};
"""


@pytest.fixture
async def broker(demo_dir: Path, database_url: str) -> AsyncIterator[Broker]:
    async with running_broker(demo_dir, database_url) as running:
        yield running


async def _ask(broker: Broker, severity: str) -> str:
    async with broker.sender("al-shkoder.municipality") as municipality:
        body = {**example("information-request"), "severity": severity}
        return str((await municipality.post_notice(body)).body["id"])


async def _answer(broker: Broker, request: str, severity: str) -> str:
    answer = {
        "channel": "information-request",
        "jurisdiction": "al-shkoder",
        "severity": severity,
        "subject": "Re: support available",
        "in_reply_to": request,
        "body": {"topic": "returnee-support", "answer": "The national programme applies."},
    }
    async with broker.sender("al-mb") as ministry:
        return str((await ministry.post_notice(answer)).body["id"])


async def _holder(broker: Broker, notice_id: str) -> str:
    [row] = await broker.rows("select contact_id from delivery where notice_id = :id", id=notice_id)
    return str(row.contact_id)


async def _first_event(client: RecipientClient, into: asyncio.Future[Any]) -> None:
    async for _, event in client.watch(last_event_id=0):
        into.set_result(event["notice_id"])
        return


async def test_a_forbid_on_addressees_or_the_asking_role_ends_every_read(broker: Broker) -> None:
    request = await _ask(broker, "low")
    answer = await _answer(broker, request, "low")
    ministry, focal_point = await _holder(broker, request), await _holder(broker, answer)
    for contact, notice_id in ((ministry, request), (focal_point, answer)):
        async with broker.recipient(contact) as client:
            assert (await client.read(notice_id)).notice["subject"]  # readable before
    (broker.data / "policies" / "zz-read-facts.cedar").write_text(FORBIDS)
    await broker.state.reload_policies()

    for contact, notice_id in ((ministry, request), (focal_point, answer)):
        async with broker.recipient(contact) as client:
            with pytest.raises(RecipientError) as caught:
                await client.read(notice_id)
            assert caught.value.status == 404
            listed = [i["notice_id"] for i in (await client.inbox())["items"]]
            assert notice_id not in listed

    # The stream from the start: the backlog skips the forbidden notice, and live push skips a
    # new one, so the first event each contact gets is the notice policy still lets them read.
    async with broker.recipient(ministry) as m, broker.recipient(focal_point) as f:
        firsts: list[asyncio.Future[Any]] = [asyncio.get_running_loop().create_future()]
        firsts.append(asyncio.get_running_loop().create_future())
        readers = [
            asyncio.create_task(_first_event(m, firsts[0])),
            asyncio.create_task(_first_event(f, firsts[1])),
        ]
        try:
            # Both streams open and past their backlog, so what follows is pushed (were one
            # not yet open, its backlog would skip the same notices: the outcome is the same).
            await asyncio.sleep(0.5)
            second = await _ask(broker, "low")  # pushed to the ministry: forbidden
            await _answer(broker, second, "low")  # pushed to the focal point: forbidden
            allowed_request = await _ask(broker, "medium")
            allowed_answer = await _answer(broker, allowed_request, "medium")
            async with asyncio.timeout(30):
                assert await firsts[0] == allowed_request
                assert await firsts[1] == allowed_answer
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
