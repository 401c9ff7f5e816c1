"""The web inbox in a real browser (Debian's Chromium driven by Playwright) against a real broker.

The story: Kumanovo's P/CVE focal point signs in with the demo key file, sees a returnee notice
arrive live, opens it (decrypted and verified in the page), acknowledges it with an encrypted
reply; a notice whose ciphertext was altered in the store is refused in red; Sarajevo's focal
point sees nothing; the ministry follows the notice's timeline; an ombudsperson verifies the log
in the page. Screenshots of every page go to tests/_artifacts/web/.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from adapters.client.sender import decrypt_reply
from broker.crypto.keys import read_private_key
from tests.fault.harness import BrokerProcess, sender

SHOTS = Path(__file__).resolve().parents[1] / "_artifacts" / "web"
EXAMPLE = (
    Path(__file__).resolve().parents[2] / "policies" / "examples" / "returnee-repatriation.json"
)


@pytest_asyncio.fixture(loop_scope="session")
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The worker's one Chromium, with every context a test opened closed after it."""
    yield chromium
    for context in list(chromium.contexts):
        await context.close()


@pytest.fixture
def broker(demo_dir: Path) -> Any:
    process = BrokerProcess(demo_dir)
    process.start()
    yield process
    process.stop()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def sign_in(
    page: Page, url: str, keys: Path, who: str, *, agency: bool = False, root: Path | None = None
) -> None:
    await page.goto(f"{url}/")
    if agency:
        await page.check("#kind-agency")
    await page.fill("#principal", who)
    await page.set_input_files("#signing-key", str(keys / f"{who}.pem"))
    if (keys / f"{who}.x25519.pem").exists() and not agency:
        await page.set_input_files("#encryption-key", str(keys / f"{who}.x25519.pem"))
        # The directory root given at enrolment (here the demo's, copied before any attack).
        await page.set_input_files("#root-file", str(root or keys.parent / "trust" / "root.json"))
    await page.click("#signin-button")
    await expect(page.locator("#who")).to_have_text(who)


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return errors


async def test_a_focal_point_reads_verifies_and_acknowledges_in_the_browser(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    keys = demo_dir / "keys"
    page = await browser.new_page()
    errors = watch_errors(page)
    await sign_in(page, broker.url, keys, "mk-kumanovo-pcve")
    await expect(page.locator("#live")).to_have_class("live on")
    await expect(page.locator("#notices .empty")).to_be_visible()
    await shot(page, "1-inbox-empty")

    example = json.loads(EXAMPLE.read_text())
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(example)).body["id"]
    fresh = page.locator(f'#notices li.fresh[data-id="{notice_id}"]')
    await expect(fresh).to_be_visible(timeout=10_000)  # arrived live, with its cue
    # The toast names the channel and the municipality as the row does, not by their ids.
    title = await fresh.locator("strong").inner_text()
    assert title and title != "returnee-repatriation", title
    await expect(page.locator(".toast", has_text=title)).to_have_count(1)
    await expect(page.locator(".toast").first).not_to_contain_text("returnee-repatriation")
    await shot(page, "2-inbox-live")

    await fresh.locator("a").click()
    await expect(page.locator("#verdict")).to_have_class("verdict ok")
    # The page speaks the directory's Macedonian: the ministry's name as the bindings sign it.
    await expect(page.locator("#verdict")).to_contain_text(
        "Министерство за внатрешни работи на Северна Македонија"
    )
    await expect(page.locator("#subject")).to_have_text(example["subject"])
    await expect(page.locator(".tlp")).to_have_text("TLP:AMBER+STRICT")
    await shot(page, "3-notice-verified")
    await page.fill("#reply", "Places reserved at the primary school.")
    await page.click("#ack")
    await expect(page.locator("#acked")).to_be_visible()
    await shot(page, "4-acknowledged")

    # The sender sees the acknowledgement, and the reply opens with the agency's own key.
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        status = (await ministry.status(notice_id)).body
    pcve = next(r for r in status["roles"] if r["role"] == "mk-kumanovo.pcve-focal-point")
    assert pcve["state"] == "acknowledged"
    agency_x25519 = read_private_key(keys / "mk-mvr.x25519.pem").private_raw
    assert (
        decrypt_reply(status["replies"][0], notice_id, agency_x25519)
        == "Places reserved at the primary school."
    )

    # Switch the interface to Macedonian.
    await page.select_option("#language", "mk")
    await expect(page.locator("#tagline")).to_contain_text("Безбедни известувања")
    await page.select_option("#language", "en")

    # Back in the inbox the row reads acknowledged; filtered to acknowledged notices, a notice
    # pushed live is announced by name but not listed among them.
    await page.click("a.back")
    row = page.locator(f'#notices li[data-id="{notice_id}"]')
    await expect(row.locator(".state")).to_have_class(re.compile(r"\bstate-acknowledged\b"))
    await page.select_option("#filter-state", "acknowledged")
    await page.click(".filters button[type=submit]")
    await expect(page.locator("#notices li.notice")).to_have_count(1)
    await expect(page.locator("#live")).to_have_class("live on")
    await page.evaluate("document.querySelectorAll('.toast').forEach((t) => t.remove())")
    title = await row.locator("strong").inner_text()  # now in the switch's English

    # An exercise notice: verified like any other, with its tag in the inbox and its banner.
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        drill = (await ministry.post_notice({**example, "exercise": "exercise"})).body["id"]
    await expect(page.locator(".toast", has_text=title)).to_have_count(1, timeout=10_000)
    await expect(page.locator(f'#notices li[data-id="{drill}"]')).to_have_count(0)
    await expect(page.locator("#notices li.notice")).to_have_count(1)
    reader = await browser.new_page()
    errors += watch_errors(reader)
    streams: list[str | None] = []
    reader.on(
        "request",
        lambda r: streams.append(r.headers.get("last-event-id")) if "/v1/stream" in r.url else None,
    )
    await sign_in(reader, broker.url, keys, "mk-kumanovo-swc")
    row = reader.locator(f'#notices li[data-id="{drill}"]')
    # The social-welfare centre reads Macedonian (its language in the directory).
    await expect(row.locator(".exercise-tag")).to_have_text("Вежба", timeout=10_000)
    # The stream starts after the newest delivery listed, as `liaison watch` does: the broker
    # does not replay the inbox's past deliveries (each a toast and a chime).
    await expect(reader.locator("#live")).to_have_class("live on")
    assert streams and streams[0] is not None and int(streams[0]) > 0, streams
    await row.locator("a").click()
    await expect(reader.locator("#verdict")).to_have_class("verdict ok")
    await expect(reader.locator("#exercise-banner")).to_have_text(
        "Вежба: ова известување е вежба, а не вистински настан."
    )
    assert not errors, errors


async def test_an_altered_notice_is_refused_in_red(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    db = sqlite3.connect(demo_dir / "liaison.db")
    with db:  # someone with access to the store flips one bit of the ciphertext
        (ciphertext,) = db.execute(
            "select ciphertext from notice where id = ?", (notice_id,)
        ).fetchone()
        altered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
        db.execute("update notice set ciphertext = ? where id = ?", (altered, notice_id))
    db.close()
    page = await browser.new_page()
    await sign_in(page, broker.url, demo_dir / "keys", "mk-kumanovo-swc")
    await page.goto(f"{broker.url}/ui/#/notice/{notice_id}")
    await expect(page.locator("#verdict")).to_have_class("verdict bad")
    await expect(page.locator("#ack")).to_have_count(0)  # nothing to acknowledge
    await expect(page.locator("#subject")).to_have_count(0)
    await shot(page, "5-altered-refused")


# Every view the page puts in <main>, by its heading, in the order drawn.
COUNT_DRAWS = """
window.__draws = [];
new MutationObserver((records) => {
  for (const r of records) {
    if (r.target.id !== "main") continue;
    for (const n of r.addedNodes) {
      const heading = n.querySelector && n.querySelector("h2");
      if (heading) window.__draws.push(heading.textContent);
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


async def test_each_view_is_drawn_once_so_what_the_official_types_at_once_is_kept(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    # A sign-in both sets the address and draws it: drawn twice, the inbox (or a notice opened
    # straight away) was replaced under the official's first click or the reply being typed.
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    page = await browser.new_page()
    await page.add_init_script(COUNT_DRAWS)
    errors = watch_errors(page)
    await sign_in(page, broker.url, demo_dir / "keys", "mk-kumanovo-pcve")
    await page.goto(f"{broker.url}/ui/#/notice/{notice_id}")  # at once, as from an e-mail link
    await page.fill("#reply", "Two places kept.")
    await page.click("#ack")
    await expect(page.locator("#acked")).to_be_visible()
    draws = await page.evaluate("window.__draws")
    assert all(a != b for a, b in itertools.pairwise(draws)), draws
    assert errors == []


async def test_a_burst_of_notices_costs_one_or_two_inbox_look_ups_not_one_each(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    # Each live event carries ids only; the page looks the names up on the inbox's first page.
    # Held back 1.5 s, as on a slow line, every event of a burst waits for the same look-up.
    import asyncio

    page = await browser.new_page()
    errors = watch_errors(page)
    look_ups: list[str] = []

    async def slow(route: Any) -> None:
        look_ups.append(route.request.url)
        await asyncio.sleep(1.5)
        await route.continue_()

    await sign_in(page, broker.url, demo_dir / "keys", "mk-kumanovo-pcve")
    await expect(page.locator("#live")).to_have_class("live on")
    await page.route(re.compile(r"/v1/inbox\?limit=20$"), slow)
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        posted = await asyncio.gather(
            *(ministry.post_notice(json.loads(EXAMPLE.read_text())) for _ in range(5))
        )
    ids = [p.body["id"] for p in posted]
    for notice_id in ids:
        await expect(page.locator(f'#notices li.fresh[data-id="{notice_id}"]')).to_be_visible(
            timeout=15_000
        )
    # One look-up for the burst, a second only for events that came after it left; five before.
    assert 1 <= len(look_ups) <= 3, look_ups
    assert errors == []


async def test_switching_the_language_keeps_a_half_written_reply_and_sign_in(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    keys = demo_dir / "keys"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    page = await browser.new_page()
    errors = watch_errors(page)
    await page.goto(f"{broker.url}/")
    await page.fill("#principal", "mk-kumanovo-pcve")
    await page.select_option("#language", "sq")
    await expect(page.locator("#signin-button")).not_to_have_text("Sign in")
    await expect(page.locator("#principal")).to_have_value("mk-kumanovo-pcve")

    await sign_in(page, broker.url, keys, "mk-kumanovo-pcve")
    await page.goto(f"{broker.url}/ui/#/notice/{notice_id}")
    await expect(page.locator("#verdict")).to_have_class("verdict ok")
    ack = await page.locator("#ack").inner_text()
    await page.fill("#reply", "Half a reply, then the switch")
    await page.select_option("#language", "en")
    await expect(page.locator("#ack")).not_to_have_text(ack)  # drawn again, in English
    await expect(page.locator("#verdict")).to_have_class("verdict ok")
    await expect(page.locator("#reply")).to_have_value("Half a reply, then the switch")
    assert errors == []


async def offer_hosts_reply_key(page: Page, notice_id: str) -> str:
    """Play the broker's host serving an X25519 key of its own as the notice's reply key (under
    the agency key's id), as the page fetches the notice; the route pattern, for ``unroute``."""
    import base64

    from nacl.public import PrivateKey

    hosts_key = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    pattern = rf"/v1/notices/{notice_id}$"

    async def offer_own_key(route: Any) -> None:
        response = await route.fetch()
        body = await response.json()
        assert body["reply_key"], "the notice offers a reply key"
        body["reply_key"] = {**body["reply_key"], "public": hosts_key}
        await route.fulfill(response=response, json=body)

    await page.route(re.compile(pattern), offer_own_key)
    return pattern


async def test_a_reply_is_sealed_only_to_the_key_the_administrators_bound_to_the_agency(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    # Attacker: the broker's own host, serving a key of its own as the ministry's reply key.
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    page = await browser.new_page()
    await sign_in(page, broker.url, demo_dir / "keys", "mk-kumanovo-pcve")
    await offer_hosts_reply_key(page, notice_id)
    await page.goto(f"{broker.url}/ui/#/notice/{notice_id}")
    await expect(page.locator("#verdict")).to_have_class("verdict ok")
    await page.fill("#reply", "For the ministry only.")
    await page.click("#ack")
    await expect(page.locator(".toast.error").last).to_be_visible()
    await expect(page.locator("#acked")).to_have_count(0)
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        status = (await ministry.status(notice_id)).body
    assert status["replies"] == []  # nothing sealed to the host's key reached the broker


async def test_sarajevo_sees_nothing_the_ministry_follows_and_an_auditor_verifies(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    keys = demo_dir / "keys"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]

    sarajevo = await browser.new_page()
    await sign_in(sarajevo, broker.url, keys, "ba-fbih-ks-sarajevo-pcve")
    await expect(sarajevo.locator("#notices .empty")).to_be_visible()
    await sarajevo.goto(f"{broker.url}/ui/#/notice/{notice_id}")
    await expect(sarajevo.locator(".toast.error")).to_contain_text("no such notice")
    await shot(sarajevo, "6-sarajevo-nothing")

    ministry_page = await browser.new_page()
    await sign_in(ministry_page, broker.url, keys, "mk-mvr", agency=True)
    await ministry_page.fill("#status-id", notice_id)
    await ministry_page.press("#status-id", "Enter")
    await expect(ministry_page.locator(".timeline > li")).to_have_count(2)
    await expect(ministry_page.locator("#timeline")).to_contain_text("P/CVE focal point")
    await shot(ministry_page, "7-sender-timeline")

    auditor = await browser.new_page()
    errors = watch_errors(auditor)
    await sign_in(auditor, broker.url, keys, "mk-ombudsman-auditor")
    await expect(auditor.locator("table.events tbody tr").first).to_be_visible()
    await expect(auditor.locator(".chart svg rect").first).to_be_attached()
    await auditor.click("#verify")
    report = auditor.locator("#verify-report li")
    await expect(report).to_have_count(5, timeout=20_000)
    await expect(auditor.locator("#verify-report li.bad")).to_have_count(0)
    await expect(auditor.locator("#verify-report")).to_contain_text("Merkle root")
    # Sarajevo's sign-in is Bosnian: the Macedonian auditor's check holds it by leaf hash only.
    await expect(auditor.locator("#verify-report")).to_contain_text("outside your jurisdiction")
    await shot(auditor, "8-auditor-verified")
    assert not errors, errors


async def test_the_pages_carry_a_strict_policy_and_no_inline_script(broker: BrokerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{broker.url}/ui/") as response:
            page = await response.text()
            csp = response.headers["Content-Security-Policy"]
        async with http.get(f"{broker.url}/ui/../liaison.toml") as response:
            assert response.status == 404
        async with http.get(f"{broker.url}/", allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/ui/"
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "<script>" not in page and "style=" not in page and "onclick" not in page
    assert "set-cookie" not in {k.lower() for k in response.headers}


async def test_keys_kept_on_the_device_unlock_only_with_the_passphrase(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    keys = demo_dir / "keys"
    page = await browser.new_page()
    await page.goto(f"{broker.url}/")
    await page.fill("#principal", "mk-kumanovo-pcve")
    await page.set_input_files("#signing-key", str(keys / "mk-kumanovo-pcve.pem"))
    await page.set_input_files("#encryption-key", str(keys / "mk-kumanovo-pcve.x25519.pem"))
    await page.check("#remember")
    await page.fill("#passphrase", "correct horse battery staple")
    await page.click("#signin-button")
    await expect(page.locator("#who")).to_have_text("mk-kumanovo-pcve")
    stored = await page.evaluate("localStorage.getItem('liaison.keys')")
    assert "PRIVATE KEY" not in stored and "mk-kumanovo-pcve" not in stored  # sealed, not plain
    # Kumanovo's focal point reads Macedonian in the directory, so the page now speaks it.
    await page.get_by_role("button", name="Одјава").click()
    await page.fill("#unlock-passphrase", "wrong passphrase")
    await page.click("#unlock button[type=submit]")
    await expect(page.locator("#unlock-error")).to_contain_text("Погрешна лозинка")  # said as such
    await page.fill("#unlock-passphrase", "correct horse battery staple")
    await page.click("#unlock button[type=submit]")
    await expect(page.locator("#who")).to_have_text("mk-kumanovo-pcve")
    await shot(page, "9-unlocked-from-device")


def test_the_root_redirect_is_logged_as_the_redirect_it_is(broker: BrokerProcess) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 302 and response.getheader("Location") == "/ui/"
    lines = [json.loads(x) for x in broker.output().splitlines() if x.startswith("{")]
    handled = [x for x in lines if x.get("event") == "request_handled" and x.get("path") == "/"]
    assert handled and handled[-1]["status"] == 302


async def test_after_a_key_change_the_page_says_previous_key_and_the_new_key_opens_it(
    browser: Browser, broker: BrokerProcess, demo_dir: Path, tmp_path: Path
) -> None:
    import asyncio
    import time

    from tests.integration.test_key_change import _new_x25519, _replace_key
    from tests.support import run_cli

    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    who = "mk-kumanovo-pcve"
    new_pem, flow, new_id = _new_x25519(tmp_path, who)
    changed = tmp_path / "directory.yaml"
    changed.write_text(_replace_key((demo_dir / "directory.yaml").read_text(), who, flow))
    assert run_cli("directory", "apply", changed, "--data", demo_dir).returncode == 0
    deadline = time.monotonic() + 30  # the broker polls the directory, then re-wraps
    while time.monotonic() < deadline:
        with sqlite3.connect(demo_dir / "liaison.db") as db:
            (key_id,) = db.execute(
                "select key_id from notice_wrap where notice_id = ? and recipient_id = ?",
                (notice_id, who),
            ).fetchone()
        if key_id == new_id:
            break
        await asyncio.sleep(0.5)
    old = await browser.new_page()
    await sign_in(old, broker.url, demo_dir / "keys", who)  # still the previous key
    await old.goto(f"{broker.url}/ui/#/notice/{notice_id}")
    await expect(old.locator("#verdict")).to_have_class("verdict note")
    # The focal point reads Macedonian (the directory says so): the catalog's previous_key line.
    await expect(old.locator("#verdict")).to_contain_text("претходен клуч")
    await shot(old, "6-key-changed-previous-key")
    keys = tmp_path / "keys"  # the official's device after the change: the new X25519 key
    keys.mkdir()
    shutil.copy(demo_dir / "keys" / f"{who}.pem", keys / f"{who}.pem")
    shutil.copy(new_pem, keys / f"{who}.x25519.pem")
    page = await browser.new_page()
    # The e-mail alert's link: the notice itself, opened once signed in.
    await page.goto(f"{broker.url}/ui/#/notice/{notice_id}")
    await page.fill("#principal", who)
    await page.set_input_files("#signing-key", str(keys / f"{who}.pem"))
    await page.set_input_files("#encryption-key", str(keys / f"{who}.x25519.pem"))
    await page.set_input_files("#root-file", str(demo_dir / "trust" / "root.json"))
    await page.click("#signin-button")
    await expect(page.locator("#verdict")).to_have_class("verdict ok")
    await expect(page.locator("#subject")).to_contain_text("Repatriation")
