"""GET /v1/notices: the agency view's list of its own notices (issue 17, item 7).

Attackers (THREATS.md): another agency that lists to learn what the ministry sent, and whoever
relays a signed list request and replays it. Each answer names channel, municipality and role
titles beside their ids, and the acknowledgement deadline; pages are newest first without
overlap or gap, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.client.sender import SenderError
from tests.integration.intake_support import Broker, example, running_broker, signed_headers


@pytest.fixture
async def broker(demo_dir: Path, database_url: str) -> Any:
    async with running_broker(demo_dir, database_url) as running:
        yield running


async def test_the_ministry_pages_through_its_own_notices_newest_first(broker: Broker) -> None:
    async with broker.sender("mk-mvr") as ministry:
        sent = [
            (await ministry.post_notice(example("returnee-repatriation"))).body["id"]
            for _ in range(5)
        ]
        first = (await ministry.sent(limit=2)).body
        assert len(first["items"]) == 2 and first["next_cursor"]
        second = (await ministry.sent(limit=2, cursor=first["next_cursor"])).body
        third = (await ministry.sent(limit=2, cursor=second["next_cursor"])).body
    listed = [n["id"] for page in (first, second, third) for n in page["items"]]
    assert sorted(listed) == sorted(sent) and len(set(listed)) == 5  # no gap, no overlap
    rows = await broker.rows("select id, created_at from notice order by created_at desc, id desc")
    assert listed == [r[0] for r in rows]  # newest first
    assert third["next_cursor"] is None
    notice = first["items"][0]
    assert notice["channel_title"] == "Returnee repatriation"
    assert notice["jurisdiction_name"] == "Kumanovo"
    assert notice["ack_deadline"] and notice["ack_deadline"] > notice["created_at"]
    roles = {r["role"]: r for r in notice["roles"]}
    assert roles["mk-kumanovo.pcve-focal-point"]["role_title"] == "P/CVE focal point, Kumanovo"
    assert roles["mk-kumanovo.pcve-focal-point"]["state"] in ("pending", "delivered")
    assert notice["replies"] == 0
    listed_events = await broker.scalar(
        "select count(*) from audit_event where action = 'notice.sent_listed'"
    )
    assert listed_events == 3


async def test_another_agency_lists_none_of_the_ministrys_notices(broker: Broker) -> None:
    async with broker.sender("mk-mvr") as ministry:
        await ministry.post_notice(example("returnee-repatriation"))
    async with broker.sender("al-asp") as other:
        answer = await other.sent()
    assert answer.status == 200 and answer.body == {"items": [], "next_cursor": None}


async def test_a_replayed_list_request_and_a_forged_cursor_are_refused(broker: Broker) -> None:
    url = f"{broker.url}/v1/notices?limit=5"
    pair = broker.agency_key("mk-mvr")
    headers = signed_headers(
        url,
        b"",
        pair.private,  # type: ignore[arg-type]
        pair.key_id("mk-mvr"),
        method="GET",
        components=("@method", "@target-uri"),
    )
    headers.pop("Content-Type"), headers.pop("Content-Digest")

    async def get(target: str, with_headers: dict[str, str]) -> tuple[int, str, Any]:
        async with aiohttp.ClientSession() as http, http.get(target, headers=with_headers) as r:
            return r.status, r.content_type, await r.json(content_type=None)

    assert (await get(url, headers))[0] == 200
    status, kind, problem = await get(url, headers)  # the same signed request again
    assert status == 401 and kind == "application/problem+json" and problem["status"] == 401
    async with broker.sender("mk-mvr") as ministry:
        with pytest.raises(SenderError) as refused:
            await ministry.sent(cursor="not a cursor")
    assert refused.value.status == 422
    assert refused.value.problem["violations"][0]["pointer"] == "/cursor"
    async with broker.sender("mk-mvr") as ministry:
        for limit in (0, 51):  # outside the documented 1..50: refused, not quietly clamped
            with pytest.raises(SenderError) as refused:
                await ministry.sent(limit=limit)
            assert refused.value.status == 422
            assert refused.value.problem["violations"][0]["pointer"] == "/limit"
