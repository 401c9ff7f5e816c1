"""The web inbox read at a glance, in Debian's Chromium at 1280x800 and 390x844 (issue 17, items 5 to 7).

Kumanovo's P/CVE focal point sees names instead of ids, the acknowledgement deadline with the
time left and the TLP marking with one line on what it allows; no view scrolls sideways on a
phone; focus and the page title follow the view; an error stays on the page. Sign-in refuses a
key pair that is not the contact's and says which file is wrong. The ministry lists its own
notices with each role's state and reads a reply decrypted in the page; an auditor pages past
the first 200 events and sees the rule and policy behind a routing event. Exercise and test
notices (one a CAP alert posted as XML) are labelled in the sent list, the status and notice
views and the auditor's filter (issue 18). Screenshots of each
view at each size go to tests/_artifacts/web/.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.test_web_inbox import EXAMPLE, shot, sign_in, watch_errors
from tests.fault.harness import BrokerProcess, sender

pytest_plugins = ["tests.e2e.test_web_inbox"]  # its browser and broker fixtures

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
PCVE = "mk-kumanovo-pcve"


async def overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no sideways scrolling)."""
    return int(
        await page.evaluate(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - window.innerWidth"
        )
    )


async def focused_heading(page: Page) -> str:
    return str(
        await page.evaluate(
            "document.activeElement.tagName === 'H2' ? document.activeElement.textContent : ''"
        )
    )


async def new_page(browser: Browser, size: str) -> Page:
    width, height = SIZES[size]
    context = await browser.new_context(
        viewport={"width": width, "height": height}, locale="en-GB", timezone_id="Europe/Skopje"
    )
    return await context.new_page()


@pytest.mark.parametrize("size", list(SIZES))
async def test_every_view_reads_at_a_glance_and_fits_the_screen(
    browser: Browser, broker: BrokerProcess, demo_dir: Path, size: str
) -> None:
    keys = demo_dir / "keys"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]

    page = await new_page(browser, size)
    errors = watch_errors(page)
    await page.goto(f"{broker.url}/")
    await expect(page.locator("#signin legend")).to_have_text("Sign in as")  # the radio group
    assert await overflow(page) <= 0
    await sign_in(page, broker.url, keys, PCVE)
    await page.select_option("#language", "en")  # the directory says Macedonian
    row = page.locator(f'#notices li[data-id="{notice_id}"]')
    # Names, not ids: the channel's title, the municipality, the role; the deadline and time left.
    await expect(row).to_contain_text("Returnee repatriation")
    await expect(row).to_contain_text("Kumanovo")
    await expect(row).to_contain_text("P/CVE focal point, Kumanovo")
    await expect(row).not_to_contain_text("mk-kumanovo")
    await expect(row.locator(".deadline")).to_contain_text("left)")
    await expect(row.locator(".deadline")).to_contain_text(" h ")
    assert await page.title() == "Inbox — Liaison"
    assert await focused_heading(page) == "Inbox"
    assert await overflow(page) <= 0, "the inbox scrolls sideways"
    await shot(page, f"pages-inbox-{size}")

    await row.locator("a").click()
    await expect(page.locator("#verdict")).to_have_class("verdict ok")
    await expect(page.locator("#tlp-meaning")).to_have_text(
        "May be shared only within your own organisation, with those who need to know."
    )
    await expect(page.locator("#deadline")).to_contain_text("Acknowledge by")
    await expect(page.locator("#meta-channel")).to_have_text("Returnee repatriation")
    await expect(page.locator("#meta-jurisdiction")).to_have_text("Kumanovo")
    subject = json.loads(EXAMPLE.read_text())["subject"]
    assert await page.title() == f"{subject} — Liaison"
    assert await focused_heading(page) == subject
    assert await overflow(page) <= 0, "the notice scrolls sideways"
    await shot(page, f"pages-notice-{size}")

    # An error stays on the page, not only in a toast that goes after six seconds.
    await page.goto(f"{broker.url}/ui/#/notice/no-such-notice")
    await expect(page.locator("#page-error")).to_contain_text("no such notice")
    await page.evaluate("document.querySelectorAll('.toast').forEach((t) => t.remove())")
    await expect(page.locator("#page-error")).to_be_visible()
    assert await overflow(page) <= 0

    auditor = await new_page(browser, size)
    await sign_in(auditor, broker.url, keys, "mk-ombudsman-auditor")
    await auditor.select_option("#language", "en")
    await expect(auditor.locator("table.events tbody tr").first).to_be_visible()
    await expect(auditor.locator(".chart svg text").first).to_be_attached()
    assert await auditor.title() == "Audit log — Liaison"
    assert await overflow(auditor) <= 0, "the audit log scrolls sideways"
    # The chart is drawn at the width it is shown at: its text is not scaled below 12 px.
    scale = await auditor.evaluate(
        "(() => { const s = document.querySelector('.chart svg');"
        " return s.getBoundingClientRect().width / s.viewBox.baseVal.width; })()"
    )
    assert scale * 13 >= 12, scale
    await shot(auditor, f"pages-audit-{size}")

    agency = await new_page(browser, size)
    await sign_in(agency, broker.url, keys, "mk-mvr", agency=True)
    await expect(agency.locator(f'#sent li[data-id="{notice_id}"]')).to_be_visible()
    assert await agency.title() == "Notice status — Liaison"
    assert await overflow(agency) <= 0, "the agency view scrolls sideways"
    await shot(agency, f"pages-agency-{size}")
    assert not errors, errors


async def _refused(page: Page, url: str, keys: Path, files: dict[str, Path | None]) -> str:
    await page.goto(f"{url}/")
    await page.fill("#principal", PCVE)
    for field, path in files.items():
        if path is not None:
            await page.set_input_files(field, str(path))
    await page.click("#signin-button")
    error = page.locator("#page-error")
    await expect(error).to_be_visible()
    await expect(page.locator("#who")).to_have_count(0)  # no inbox behind a refused pair
    await expect(page.locator("#notices")).to_have_count(0)
    return str(await error.text_content())


async def test_sign_in_refuses_a_key_pair_that_is_not_the_contacts_and_names_the_file(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    keys = demo_dir / "keys"
    root = demo_dir / "trust" / "root.json"
    mine, other = keys / f"{PCVE}.pem", keys / "mk-kumanovo-swc.pem"
    page = await new_page(browser, "phone")

    no_encryption = await _refused(
        page, broker.url, keys, {"#signing-key": mine, "#root-file": root}
    )
    assert "No encryption key file was chosen" in no_encryption

    # Someone else's encryption key: named by the owner the signed directory binds it to.
    someone_else = await _refused(
        page,
        broker.url,
        keys,
        {
            "#signing-key": mine,
            "#encryption-key": keys / "mk-kumanovo-swc.x25519.pem",
            "#root-file": root,
        },
    )
    assert "The encryption key file holds the key of Aleksandar Petrovski" in someone_else
    assert PCVE in someone_else

    # Someone else's encryption key without the root file: the broker's directory refuses it.
    unsigned = await _refused(
        page,
        broker.url,
        keys,
        {"#signing-key": mine, "#encryption-key": keys / "mk-kumanovo-swc.x25519.pem"},
    )
    assert "The encryption key file holds no key of mk-kumanovo-pcve" in unsigned

    wrong_signing = await _refused(
        page,
        broker.url,
        keys,
        {"#signing-key": other, "#encryption-key": keys / f"{PCVE}.x25519.pem", "#root-file": root},
    )
    assert "The signing key file holds the key of Aleksandar Petrovski" in wrong_signing

    swapped = await _refused(
        page,
        broker.url,
        keys,
        {"#signing-key": keys / f"{PCVE}.x25519.pem", "#encryption-key": mine},
    )
    assert "The signing key file is not an Ed25519 signing key" in swapped

    await sign_in(page, broker.url, keys, PCVE)  # the right pair is let in
    await expect(page.locator("#notices")).to_be_visible()
    await shot(page, "pages-signin-wrong-key")


async def test_the_agency_lists_its_notices_and_reads_a_reply_decrypted_in_the_page(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    keys = demo_dir / "keys"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    official = await new_page(browser, "desktop")
    await sign_in(official, broker.url, keys, PCVE)
    await official.goto(f"{broker.url}/ui/#/notice/{notice_id}")
    await official.fill("#reply", "Two places kept at the primary school.")
    await official.click("#ack")
    await expect(official.locator("#acked")).to_be_visible()

    page = await new_page(browser, "phone")
    errors = watch_errors(page)
    await page.goto(f"{broker.url}/")
    await page.check("#kind-agency")
    await page.fill("#principal", "mk-mvr")
    await page.set_input_files("#signing-key", str(keys / "mk-mvr.pem"))
    await page.set_input_files("#encryption-key", str(keys / "mk-mvr.x25519.pem"))
    await page.click("#signin-button")
    await expect(page.locator("#who")).to_have_text("mk-mvr")
    row = page.locator(f'#sent li[data-id="{notice_id}"]')
    await expect(row).to_contain_text("Returnee repatriation · Kumanovo")
    await expect(row).to_contain_text("replies: 1")
    pcve = row.locator(".role-states li", has_text="P/CVE focal point, Kumanovo")
    await expect(pcve.locator(".state")).to_have_text("acknowledged")
    await expect(row.locator(".role-states li")).to_have_count(2)
    await row.locator("button.link").click()
    await expect(page.locator("#replies .reply-text")).to_have_text(
        "Two places kept at the primary school."
    )
    await expect(page.locator("#replies")).to_contain_text("P/CVE focal point, Kumanovo")
    assert await overflow(page) <= 0
    await shot(page, "pages-agency-reply-phone")
    assert not errors, errors


async def test_the_auditor_pages_past_200_events_and_sees_the_rule_behind_routing(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    example = json.loads(EXAMPLE.read_text())
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        for _ in range(7):  # 105 notices, each at least two events (posted, routed)
            await asyncio.gather(*(ministry.post_notice(example) for _ in range(15)))
    page = await new_page(browser, "phone")
    errors = watch_errors(page)
    await sign_in(page, broker.url, demo_dir / "keys", "mk-ombudsman-auditor")
    # The switch draws the view again, after the sign-in's draw has ended (draws take turns, the
    # chart last): page only the new view, fully drawn, or the new draw lands after "next" and
    # shows page 1 again (the old pager, or one in the language already shown, reads "Page 1" too).
    chart = page.locator("#chart > *").first
    await expect(chart).to_be_attached()
    await page.evaluate("document.getElementById('audit-page').dataset.stale = 'yes'")
    await page.select_option("#language", "en")
    await expect(page.locator("#audit-page:not([data-stale])")).to_contain_text("Page 1")
    await expect(chart).to_be_attached()
    rows = page.locator("table.events tbody tr")
    await expect(rows).to_have_count(200)
    await expect(page.locator("#audit-previous")).to_be_disabled()
    first_page_last = int(str(await rows.last.get_attribute("data-seq")))
    await page.click("#audit-next")
    await expect(page.locator("#audit-page")).to_contain_text("Page 2")
    first = int(str(await rows.first.get_attribute("data-seq")))
    assert first > first_page_last  # the next page starts after the first one ended
    assert await rows.count() >= 10
    await page.click("#audit-previous")
    await expect(page.locator("#audit-page")).to_contain_text("Page 1")
    await expect(rows.last).to_have_attribute("data-seq", str(first_page_last))

    # The rule and the policy behind a routing event, beside it.
    routed = page.locator("table.events tbody tr", has_text="notice.routed").first
    await expect(routed.locator(".rules li").first).to_contain_text(
        "mk-kumanovo.pcve-focal-point ← "
    )
    # Date pickers: a day before anything happened shows no events; today shows them again.
    await page.fill("#audit-to", "1.1.2020")
    await page.click(".filters button[type=submit]")
    await expect(page.locator("#audit-page")).to_have_text("No events.")
    await page.fill("#audit-to", "")
    await page.fill("#audit-from", "1. 1. 2020.")
    await page.click(".filters button[type=submit]")
    await expect(rows).to_have_count(200)
    assert await overflow(page) <= 0
    await shot(page, "pages-audit-paging-phone")
    assert not errors, errors


CAP_ALERT = Path(__file__).resolve().parents[1] / "data" / "cap" / "restricted-security.xml"


async def test_exercise_and_test_notices_are_labelled_in_the_sent_list_status_and_audit_views(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    """The ministry's exercise in its sent list and status view; a CAP alert whose ``status`` is
    Test, posted as ``application/cap+xml``, in the mayor's inbox and notice view (the page maps
    the marking from the signed XML itself and compares it with the broker's copy); the
    auditor's filter shows only the test notice's events, its posted and routed ones tagged."""
    keys = demo_dir / "keys"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        drill = await ministry.post_notice(
            {**json.loads(EXAMPLE.read_text()), "exercise": "exercise"}
        )
        drill_id = drill.body["id"]
    alert = CAP_ALERT.read_bytes().replace(b"2026-12-31", b"2099-12-31")
    async with sender(demo_dir, broker.url, "mk-bjb") as bureau:
        cap_id = (await bureau.post_cap(alert.replace(b"<status>Actual", b"<status>Test"))).body[
            "id"
        ]

    page = await new_page(browser, "desktop")
    errors = watch_errors(page)
    await sign_in(page, broker.url, keys, "mk-mvr", agency=True)
    await page.select_option("#language", "en")
    row = page.locator(f'#sent li[data-id="{drill_id}"]')
    await expect(row.locator(".exercise-tag")).to_have_text("Exercise", timeout=10_000)
    await row.locator("button.link").click()
    await expect(page.locator("#exercise-banner")).to_have_text(
        "Exercise: this notice is an exercise, not a real event."
    )

    mayor = await new_page(browser, "desktop")
    errors += watch_errors(mayor)
    await sign_in(mayor, broker.url, keys, "mk-kumanovo-mayor")
    await mayor.select_option("#language", "en")
    row = mayor.locator(f'#notices li[data-id="{cap_id}"]')
    await expect(row.locator(".exercise-tag")).to_have_text("Test", timeout=10_000)
    await row.locator("a").click()
    await expect(mayor.locator("#verdict")).to_have_class("verdict ok")
    await expect(mayor.locator("#exercise-banner")).to_have_text(
        "Test: this notice is a test, not a real event."
    )

    auditor = await new_page(browser, "desktop")
    errors += watch_errors(auditor)
    await sign_in(auditor, broker.url, keys, "mk-ombudsman-auditor")
    await auditor.select_option("#language", "en")
    # The view is drawn again in English: filter on the new one, not on the one it replaces.
    await expect(auditor.locator(".filters button[type=submit]")).to_have_text("Search")
    await auditor.select_option("#audit-exercise", "test")
    await auditor.click(".filters button[type=submit]")
    rows = auditor.locator("table.events tbody tr")
    await expect(rows.filter(has_text=f"notice:{drill_id}")).to_have_count(0)  # filtered now
    for action in ("notice.posted", "notice.routed"):  # the leaves that carry the marking
        event = rows.filter(has_text=f"notice:{cap_id}").filter(has_text=action)
        await expect(event.locator(".exercise-tag")).to_have_text("Test")
    assert not errors, errors
