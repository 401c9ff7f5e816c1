"""A notice from abroad in the web inbox: verified in the page against the sending country's root.

On ``liaison demo --federation``'s running brokers, Kumanovo's focal point signs in on North
Macedonia's broker with only North Macedonia's root (as enrolment gives it) and opens the two
notices from Kosovo — one direct, one relayed by the hub. The page checks each agency's
signature with the key Kosovo's administrators bound, under the Kosovo root that North
Macedonia's administrators signed with their key bindings (``liaison_peer_roots``). A fresh
notice is acknowledged with a reply sealed to the key Kosovo bound to the ministry.

Attacker: North Macedonia's broker host (or the hub's, relaying), which edits its store so that
a notice from Kosovo carries another country's root and bindings — real, signed ones (the
hub's), or passes a relayed notice off as the hub's own. The page must refuse it in red: neither broker
holds Kosovo's administrators' keys, and the pin the page holds to is signed by North
Macedonia's. And a host that serves its own X25519 key as the reply key, to read the reply: the
page seals nothing to a key the sending country did not bind.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from playwright.async_api import Browser, expect

from tests.e2e.test_web_inbox import (
    EXAMPLE,
    browser,  # noqa: F401 - the fixture
    offer_hosts_reply_key,
    shot,
    sign_in,
    watch_errors,
)
from tests.fault.harness import sender
from tests.integration.test_federation_demo import _members, interactive


async def test_a_notice_from_kosovo_verifies_in_kumanovos_page_and_a_swapped_origin_is_refused(
    browser: Browser,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    root = tmp_path / "region"
    with interactive(root) as (_, text):
        members = _members(root, text)
        mk, hub = members["mk"], members["hub"]
        returnee, relayed = re.findall(r"accepted: notice ([0-9a-f]{32})", text)[:2]
        page = await browser.new_page()
        errors = watch_errors(page)
        await sign_in(page, mk.url, mk.data / "keys", "mk-kumanovo-pcve")
        await page.select_option("#language", "en")
        for notice_id, agency in ((returnee, "Ministry of Internal Affairs of Kosovo"),
                                  (relayed, "Kosovo Police")):  # fmt: skip
            await page.goto(f"{mk.url}/ui/#/notice/{notice_id}")
            verdict = page.locator("#verdict")
            await expect(verdict).to_have_class("verdict ok")
            await expect(verdict).to_contain_text(f"Signed by {agency}")
            await expect(verdict).to_contain_text("in XK: verified against that country's signed")
            await expect(page.locator("#subject")).not_to_be_empty()
        await shot(page, "abroad-verified")

        # A fresh notice from Kosovo, acknowledged with a reply. The host first serves its own
        # X25519 key as the reply key (a broker that would read the reply): the page seals
        # nothing to it and says so; with the key Kosovo bound, the reply goes.
        notice = json.loads(EXAMPLE.read_text())
        notice["jurisdiction"] = "mk-kumanovo"
        async with sender(members["xk"].data, members["xk"].url, "xk-mpb") as ministry:
            fresh = (await ministry.post_notice(notice)).body["id"]
        row = page.locator(f'#notices li[data-id="{fresh}"]')
        for _ in range(30):  # forwarded by Kosovo's outbox worker, then routed here
            await page.goto(f"{mk.url}/ui/#/inbox")
            if await row.count():
                break
            await page.wait_for_timeout(1000)
        pattern = await offer_hosts_reply_key(page, fresh)
        await page.goto(f"{mk.url}/ui/#/notice/{fresh}")
        await expect(page.locator("#verdict")).to_have_class("verdict ok")
        await page.fill("#reply", "Two places at the school.")
        await page.click("#ack")
        await expect(page.locator(".toast.error")).to_contain_text("The reply was not sent")
        await expect(page.locator("#acked")).to_have_count(0)
        await page.unroute(re.compile(pattern))
        await page.goto(f"{mk.url}/ui/#/inbox")
        await page.goto(f"{mk.url}/ui/#/notice/{fresh}")
        await page.fill("#reply", "Two places at the school.")
        await page.click("#ack")
        await expect(page.locator("#acked")).to_be_visible()

        # North Macedonia's host gives the direct notice the hub's root and bindings (signed,
        # but not Kosovo's), and names the hub as the relayed notice's origin country.
        hub_root = (hub.data / "trust" / "root.json").read_bytes()
        hub_bindings = (hub.data / "trust" / "bindings.json").read_bytes()
        (store,) = [p for p in mk.data.glob("*.db")]
        with sqlite3.connect(store) as db:
            db.execute(
                "UPDATE federation_crossing SET origin_root = ?, origin_bindings = ? "
                "WHERE notice_id = ?",
                (hub_root, hub_bindings, returnee),
            )
            # The relayed one as if the hub itself had sent it: the hub's own signed root and
            # bindings (its demo directory binds Kosovo's agencies' keys too), no country.
            db.execute(
                "UPDATE federation_crossing SET origin_country = NULL, origin_root = ?, "
                "origin_bindings = ? WHERE notice_id = ?",
                (hub_root, hub_bindings, relayed),
            )
        await page.goto(f"{mk.url}/ui/#/inbox")
        await page.goto(f"{mk.url}/ui/#/notice/{returnee}")
        await expect(page.locator("#verdict")).to_have_class("verdict bad")
        await expect(page.locator("#verdict")).to_contain_text("is not the pinned")
        await expect(page.locator("#subject")).to_have_count(0)
        await shot(page, "abroad-swapped-root-refused")
        await page.goto(f"{mk.url}/ui/#/inbox")
        await page.goto(f"{mk.url}/ui/#/notice/{relayed}")
        await expect(page.locator("#verdict")).to_have_class("verdict bad")
        # The hub's own root is never among the pins: its directory vouches for no agency.
        await expect(page.locator("#verdict")).to_contain_text(
            "whose directory root your administrators have not signed"
        )
        await expect(page.locator("#subject")).to_have_count(0)
        assert errors == [], errors
