"""The continuity page, the audit chart's names and the audit date fields, in Debian's Chromium.

The Macedonian ombudsperson opens the continuity page on a phone (390x844): Kumanovo's
social-welfare centre is held by Aleksandar Petrovski. The administrator removes that holder from
the directory file (and ends the council holder's key in ten days) and applies it with `liaison
directory apply --force` on the host; the page then names the role vacant and the key ending,
in words and by name, without sideways scrolling. The audit chart
labels its groups with the channel's title and the municipality's name; the date filters read
day.month.year whatever the browser's locale (here en-US, whose own picker is month/day/year).
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, Page, expect

from tests.e2e.test_web_inbox import EXAMPLE, shot, sign_in, watch_errors
from tests.e2e.test_web_pages import new_page, overflow
from tests.fault.harness import BrokerProcess, sender
from tests.support import run_cli

pytest_plugins = ["tests.e2e.test_web_inbox"]  # its browser and broker fixtures

AUDITOR = "mk-ombudsman-auditor"
SWC = "mk-kumanovo.social-welfare-centre"


async def redraw_until(page: Page, role: str, text: str, seconds: float = 20) -> None:
    """Open the page again (the broker picks up an applied directory within 5 s) until the role
    shows ``text``."""
    item = page.locator(f'li[data-role="{role}"]')
    for _ in range(int(seconds)):
        await page.evaluate("location.hash = '#/audit'")
        await expect(page.locator("table.events")).to_be_visible()
        await page.evaluate("location.hash = '#/continuity'")
        await expect(page.locator("#continuity-summary")).to_be_visible()
        if text in str(await item.text_content()):
            return
        await asyncio.sleep(1)
    raise AssertionError(f"{role} never showed {text!r}: {await item.text_content()}")


async def test_a_vacancy_made_by_a_directory_change_shows_on_the_continuity_page(
    browser: Browser, broker: BrokerProcess, demo_dir: Path, tmp_path: Path
) -> None:
    page = await new_page(browser, "phone")
    errors = watch_errors(page)
    await sign_in(page, broker.url, demo_dir / "keys", AUDITOR)
    await page.select_option("#language", "en")
    await page.click("nav a[href='#/continuity']")
    await expect(page.locator("main h2")).to_have_text("Continuity")
    assert await page.title() == "Continuity — Liaison"
    kumanovo = page.locator('section[data-jurisdiction="mk-kumanovo"]')
    await expect(kumanovo.locator("h3")).to_have_text("Kumanovo")
    swc = page.locator(f'li[data-role="{SWC}"]')
    await expect(swc.locator("h4")).to_have_text("Social-welfare centre, Kumanovo")
    await expect(swc.locator(".holder")).to_have_text("Aleksandar Petrovski")
    await expect(swc.locator(".mark-ok")).to_be_visible()
    await expect(page.locator("section[data-jurisdiction^='ba']")).to_have_count(0)  # not theirs

    text = (demo_dir / "directory.yaml").read_text()
    # The council holder's encryption key ends in ten days (a warning, not a refusal).
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    csc = re.search(r"\{id: mk-kumanovo-csc\.x25519\.[0-9a-f]+,[^}]*status: active", text)
    assert csc is not None
    until = ends.isoformat().replace("+00:00", "Z")
    text = text.replace(
        csc.group(0), csc.group(0) + f", from: '2026-01-01T00:00:00Z', until: '{until}'"
    )
    changed = tmp_path / "directory.yaml"
    changed.write_text(
        "\n".join(x for x in text.splitlines() if f"role: {SWC}, contact: mk-kumanovo-swc" not in x)
        + "\n"
    )
    refused = await asyncio.to_thread(run_cli, "directory", "apply", changed, "--data", demo_dir)
    assert refused.returncode == 1 and "vacant" in refused.stderr
    forced = await asyncio.to_thread(
        run_cli, "directory", "apply", changed, "--data", demo_dir, "--force"
    )
    assert forced.returncode == 0, forced.stderr

    await redraw_until(page, SWC, "Vacant: nobody receives these notices")
    await expect(swc.locator(".holder")).to_have_text("nobody (vacant)")
    await expect(swc.locator(".mark-vacant")).to_be_visible()
    await expect(swc).not_to_contain_text("mk-kumanovo-swc")  # names, not ids
    council = page.locator('li[data-role="mk-kumanovo.community-safety-council"]')
    local = ends.astimezone(ZoneInfo("Europe/Skopje"))
    await expect(council.locator(".mark-ending")).to_have_text(
        re.compile(rf"The encryption key of .+ ends 0?{local.day}\.0?{local.month}\.{local.year} ")
    )
    await expect(council).not_to_contain_text("mk-kumanovo-csc")
    await page.check("#continuity-only")  # only what needs attention: the vacancy is there
    await expect(page.locator("li.continuity-role.fine")).to_have_count(0)
    await expect(swc).to_be_visible()
    await expect(page.locator("#continuity-summary")).to_contain_text("2 need attention")
    assert await overflow(page) <= 0, "the continuity page scrolls sideways"
    await shot(page, "continuity-vacancy-phone")
    await page.select_option("#language", "mk")
    await expect(swc.locator(".mark-vacant")).to_have_text(
        "Упразнето: никој не ги прима овие известувања"
    )
    await shot(page, "continuity-vacancy-phone-mk")
    assert not errors, errors


async def test_the_audit_chart_names_its_groups_and_dates_read_day_month_year(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        await ministry.post_notice(json.loads(EXAMPLE.read_text()))
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, locale="en-US", timezone_id="Europe/Skopje"
    )
    page = await context.new_page()
    errors = watch_errors(page)
    await sign_in(page, broker.url, demo_dir / "keys", AUDITOR)
    await page.select_option("#language", "en")
    labels = page.locator(".chart svg text")
    await expect(labels.first).to_have_text("Returnee repatriation · Kumanovo")
    assert "returnee-repatriation" not in " ".join(await labels.all_text_contents())

    field = page.locator("#audit-to")
    await expect(page.locator("label", has=field)).to_contain_text("To (date) (day.month.year)")
    await expect(field).to_have_attribute("placeholder", "dd.mm.yyyy")
    for wrong in ("31.2.2026", "2020-01-01", "1/13/2020"):  # no such day; not day.month.year
        await page.evaluate("document.getElementById('page-error')?.remove()")
        await field.fill(wrong)
        await page.click(".filters button[type=submit]")
        await expect(page.locator("#page-error")).to_contain_text(
            "Write the date as day.month.year, for example 25.11.2026."
        )
        await expect(field).to_have_attribute("aria-invalid", "true")
    await field.fill("1.1.2020")  # day first: 1 January, before anything happened
    await page.click(".filters button[type=submit]")
    await expect(page.locator("#audit-page")).to_have_text("No events.")
    await expect(field).not_to_have_attribute("aria-invalid", "true")
    await field.fill("")
    await page.fill("#audit-from", "13.1.2020")  # month 13 would not parse month first
    await page.click(".filters button[type=submit]")
    await expect(page.locator("table.events tbody tr").first).to_be_visible()

    await page.select_option("#language", "mk")
    await expect(page.locator("#audit-from")).to_have_attribute("placeholder", "дд.мм.гггг")
    await expect(page.locator("label", has=page.locator("#audit-from"))).to_contain_text(
        "(ден.месец.година)"
    )
    await shot(page, "audit-dates-phone-mk")
    assert not errors, errors


# Written out here, not read from the catalogs, so a wrong or missing catalog fails the test.
HEADING = {
    "en": "Continuity",
    "sq": "Vazhdimësia",
    "bs": "Kontinuitet",
    "hr": "Kontinuitet",
    "sr-Latn": "Kontinuitet",
    "sr-Cyrl": "Континуитет",
    "cnr": "Kontinuitet",
    "mk": "Континуитет",
}
HOLDER = {
    "en": "Holder",
    "sq": "Mbajtësi",
    "bs": "Nosilac",
    "hr": "Nositelj",
    "sr-Latn": "Nosilac",
    "sr-Cyrl": "Носилац",
    "cnr": "Nosilac",
    "mk": "Носител",
}


SWC_TITLE = {
    "en": "Social-welfare centre, Kumanovo",
    "sq": "Qendra e mirëqenies sociale, Kumanovë",
    "sr-Cyrl": "Центар за социјални рад, Куманово",
    "mk": "Центар за социјална работа, Куманово",
}


async def test_the_continuity_page_in_each_of_the_eight_languages(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    page = await new_page(browser, "desktop")
    errors = watch_errors(page)
    await sign_in(page, broker.url, demo_dir / "keys", AUDITOR)
    await page.goto(f"{broker.url}/ui/#/continuity")
    for code, heading in HEADING.items():
        await page.select_option("#language", code)
        await expect(page.locator("main h2")).to_have_text(heading)
        await expect(page.locator(f'li[data-role="{SWC}"] dt').first).to_have_text(HOLDER[code])
        if code in SWC_TITLE:  # the role's title from the directory file, in that language
            await expect(page.locator(f'li[data-role="{SWC}"] h4')).to_have_text(SWC_TITLE[code])
        # The date is day first in every language ("02.12.2026", Croatian "02. 12. 2026.").
        today = datetime.now(ZoneInfo("Europe/Skopje"))
        day_first = rf"0?{today.day}\. ?0?{today.month}\. ?{today.year}"
        await expect(page.locator("main .hint").first).to_have_text(re.compile(day_first))
        await shot(page, f"continuity-{code}")
    assert not errors, errors
