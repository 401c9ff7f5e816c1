"""Enrolment in Chromium, without the official ever touching a key file.

Kumanovo's P/CVE focal point has lost their keys; a notice was already sent to the old ones.
The administrator runs `liaison directory invite`; the official opens the link, chooses a
passphrase (a weak one and a mistyped repeat are refused on the page), the page makes the keys,
keeps them on the device and offers an encrypted backup; the official reads the fingerprint;
`liaison directory approve` with a wrong fingerprint is refused, with the right one binds the
keys. Signing in with a wrong passphrase is said as such; with the right one, the inbox opens and
the old notice decrypts with the new key (re-wrapped by the broker). At 390 by 844 pixels the same
walk, from the code to the first decrypted notice, fits the screen at every step. Screenshots go to tests/_artifacts/web/.
"""

# The browser and broker fixtures come from test_web_inbox: tests name them as parameters.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.e2e.test_web_inbox import EXAMPLE, broker, browser, shot, watch_errors  # noqa: F401
from tests.fault.harness import BrokerProcess, sender
from tests.support import run_cli

PCVE = "mk-kumanovo-pcve"
PASSPHRASE = "lake harbour violet sixteen"


def _invite(broker: BrokerProcess, contact: str) -> str:
    """The enrolment link `liaison directory invite` prints."""
    made = run_cli(
        "directory",
        "invite",
        contact,
        "--data",
        broker.data,
        env={"LIAISON_SERVER_PUBLIC_URL": broker.url},
    )
    assert made.returncode == 0, made.stderr
    link = re.search(r"The official opens (\S+)", made.stdout)
    assert link is not None
    return link[1]


async def _no_overflow(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide at 390px"


async def _enrol(page: Page, link: str) -> str:
    await page.goto(link)
    await page.fill("#enrol-passphrase", PASSPHRASE)
    await page.fill("#enrol-passphrase-again", PASSPHRASE)
    await page.click("#enrol-submit")
    await expect(page.locator("#enrol-fingerprint")).to_be_visible(timeout=20_000)
    return (await page.locator("#enrol-fingerprint").inner_text()).strip()


async def _unlock_and_open(page: Page, contact: str, notice_id: str) -> None:
    """Unlock the keys kept on the device once the approval has reached the broker, then open
    the notice until it verifies (its re-wrap for the new key follows within a poll)."""
    deadline = time.monotonic() + 30  # the broker polls the directory every few seconds
    while not await page.locator("#who").is_visible():
        assert time.monotonic() < deadline, "the approved keys never signed in"
        await page.fill("#unlock-passphrase", PASSPHRASE)
        await page.click("#unlock button[type=submit]")
        await page.wait_for_timeout(1000)
    await expect(page.locator("#who")).to_have_text(contact)
    row = page.locator(f'#notices li[data-id="{notice_id}"]')
    await expect(row).to_be_visible(timeout=10_000)
    await row.locator("a").click()
    verdict = page.locator("#verdict")
    await expect(verdict).to_be_visible(timeout=10_000)
    while "ok" not in (await verdict.get_attribute("class") or ""):
        # Until the re-wrap the page says "sent to your previous key", never "tampered".
        assert "note" in (await verdict.get_attribute("class") or ""), await verdict.inner_text()
        assert time.monotonic() < deadline + 30, await verdict.inner_text()
        await page.wait_for_timeout(1000)
        await page.evaluate("location.hash = '#/inbox'")
        await expect(row).to_be_visible(timeout=10_000)
        await row.locator("a").click()
        await expect(verdict).to_be_visible(timeout=10_000)


async def test_an_official_enrols_in_the_browser_and_reads_a_first_decrypted_notice(
    browser: Browser, broker: BrokerProcess, demo_dir: Path, tmp_path: Path
) -> None:
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    link = _invite(broker, PCVE)
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    errors = watch_errors(page)
    await page.goto(link)
    await expect(page.locator("#enrol-code")).to_have_value(re.compile(r"^[0-9A-Z-]{14}$"))
    await expect(page).to_have_url(re.compile(r"/ui/#/enrol$"))  # the code left the address bar
    await page.fill("#enrol-passphrase", "short")
    await page.click("#enrol-submit")
    await expect(page.locator("#enrol-error")).to_contain_text("too weak")
    await page.fill("#enrol-passphrase", PASSPHRASE)
    await page.fill("#enrol-passphrase-again", PASSPHRASE + "!")
    await page.click("#enrol-submit")
    await expect(page.locator("#enrol-error")).to_contain_text("differ")
    await shot(page, "enrol-1-form")
    await page.fill("#enrol-passphrase-again", PASSPHRASE)
    await page.click("#enrol-submit")
    await expect(page.locator("#enrol-fingerprint")).to_be_visible(timeout=20_000)
    heard = (await page.locator("#enrol-fingerprint").inner_text()).strip()
    assert re.fullmatch(r"[0-9A-F]{4}(-[0-9A-F]{4}){3}", heard)
    await expect(page.locator("#enrol-root")).to_have_text(link.rsplit("/", 1)[1])
    await shot(page, "enrol-2-fingerprint")
    async with page.expect_download() as download:
        await page.click("#enrol-backup")
    saved = await (await download.value).path()
    backup = json.loads(await asyncio.to_thread(Path(saved).read_text))
    assert backup["format"] == "liaison-key-backup-v1" and backup["contact"] == PCVE
    assert set(backup) >= {"salt", "iv", "sealed"} and "signing" not in backup

    await page.click("#enrol-signin")
    await page.fill("#unlock-passphrase", PASSPHRASE)
    await page.click("#unlock button[type=submit]")
    await expect(page.locator("#unlock-error")).to_contain_text("not have approved")

    data = ("--data", broker.data)
    listed = run_cli("directory", "pending", *data)
    assert f"{PCVE}  {heard}" in listed.stdout
    wrong = run_cli("directory", "approve", PCVE, "ABCD-ABCD-ABCD-ABCD", *data)
    assert wrong.returncode == 1 and len(wrong.stderr.splitlines()) == 1
    approved = run_cli("directory", "approve", PCVE, heard, *data)
    assert approved.returncode == 0, approved.stderr

    await page.fill("#unlock-passphrase", "not the passphrase at all")
    await page.click("#unlock button[type=submit]")
    await expect(page.locator("#unlock-error")).to_contain_text("Wrong passphrase")
    await shot(page, "enrol-3-wrong-passphrase")
    await _unlock_and_open(page, PCVE, notice_id)
    await expect(page.locator("#subject")).to_have_text(json.loads(EXAMPLE.read_text())["subject"])
    await shot(page, "enrol-4-first-notice")
    assert errors == []


async def test_on_a_phone_an_official_enrols_and_reads_a_first_decrypted_notice(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    """The same walk at 390x844, from the code to the first decrypted notice, each step on
    the screen without sideways scrolling."""
    swc = "mk-kumanovo-swc"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    errors = watch_errors(page)
    await page.goto(f"{broker.url}/ui/")
    await page.click("#enrol-link")
    await expect(page.locator("#enrol-code")).to_be_visible()
    await _no_overflow(page)
    await shot(page, "enrol-phone-1-form")
    heard = await _enrol(page, _invite(broker, swc))
    await _no_overflow(page)
    await shot(page, "enrol-phone-2-fingerprint")
    approved = run_cli("directory", "approve", swc, heard, "--data", broker.data)
    assert approved.returncode == 0, approved.stderr
    await page.click("#enrol-signin")
    await _unlock_and_open(page, swc, notice_id)
    await expect(page.locator("#subject")).to_have_text(json.loads(EXAMPLE.read_text())["subject"])
    await _no_overflow(page)
    await shot(page, "enrol-phone-3-first-notice")
    assert errors == []
