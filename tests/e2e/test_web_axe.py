"""axe-core finds no accessibility violation in any view of the web inbox (issue 17).

Debian's Chromium at 1280x800 and 390x844: sign-in, enrolment, the inbox, one notice, the
agency's list and timeline, the audit log and the continuity page, each checked by axe-core
(vendored in tests/e2e/vendor/, injected with add_script_tag: nothing is fetched at test time)
with every rule it runs by default (WCAG 2 A and AA, best practices). The injected script is
inline, so these pages are opened with the CSP bypassed; the CSP itself is tested elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.test_web_inbox import EXAMPLE, shot, sign_in, watch_errors
from tests.fault.harness import BrokerProcess, sender

pytest_plugins = ["tests.e2e.test_web_inbox"]  # its browser and broker fixtures

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
PCVE = "mk-kumanovo-pcve"


async def axe_page(browser: Browser, size: str) -> Page:
    width, height = SIZES[size]
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        locale="en-GB",
        timezone_id="Europe/Skopje",
        bypass_csp=True,  # axe-core comes in as an inline script
    )
    return await context.new_page()


async def violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it stands: rule, impact, and the elements."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document, { resultTypes: ["violations"] })).violations
            .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                           nodes: v.nodes.map((n) => n.target.join(" ") + " :: " + n.failureSummary) }))"""
    )
    return found


async def clean(page: Page, view: str) -> None:
    found = await violations(page)
    assert not found, f"{view}: " + json.dumps(found, indent=1, ensure_ascii=False)


@pytest.mark.parametrize("size", list(SIZES))
async def test_no_view_has_an_axe_violation(
    browser: Browser, broker: BrokerProcess, demo_dir: Path, size: str
) -> None:
    assert AXE.read_bytes().startswith(b"/*! axe v4.")
    keys = demo_dir / "keys"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]

    page = await axe_page(browser, size)
    errors = watch_errors(page)
    await page.goto(f"{broker.url}/")
    await expect(page.locator("#signin")).to_be_visible()
    await clean(page, "sign-in")
    await page.goto(f"{broker.url}/ui/#/enrol")
    await expect(page.locator("main h2").first).to_be_visible()
    await clean(page, "enrolment")

    await sign_in(page, broker.url, keys, PCVE)
    await page.select_option("#language", "en")
    await expect(page.locator(f'#notices li[data-id="{notice_id}"]')).to_be_visible()
    await clean(page, "inbox")
    await page.locator(f'#notices li[data-id="{notice_id}"] a').click()
    await expect(page.locator("#verdict")).to_have_class("verdict ok")
    await clean(page, "notice")
    await page.goto(f"{broker.url}/ui/#/notice/no-such-notice")
    await expect(page.locator("#page-error")).to_be_visible()
    await clean(page, "an error kept on the page")

    agency = await axe_page(browser, size)
    await sign_in(agency, broker.url, keys, "mk-mvr", agency=True)
    await expect(agency.locator(f'#sent li[data-id="{notice_id}"]')).to_be_visible()
    await clean(agency, "agency list")
    await agency.locator(f'#sent li[data-id="{notice_id}"] button.link').click()
    await expect(agency.locator("#timeline h3")).to_be_visible()
    await clean(agency, "agency timeline")

    auditor = await axe_page(browser, size)
    await sign_in(auditor, broker.url, keys, "mk-ombudsman-auditor")
    await auditor.select_option("#language", "en")
    await expect(auditor.locator("table.events tbody tr").first).to_be_visible()
    await expect(auditor.locator(".chart svg text").first).to_be_attached()
    await clean(auditor, "audit log")
    await auditor.click("#verify")
    await expect(auditor.locator("#verify-report li").last).to_contain_text("inclusion proof")
    await clean(auditor, "audit log, verified")
    await auditor.goto(f"{broker.url}/ui/#/continuity")
    await expect(auditor.locator("#continuity-summary")).to_be_visible()
    await clean(auditor, "continuity")
    await auditor.check("#continuity-only")
    await auditor.select_option("#language", "mk")  # another language, another script
    await expect(auditor.locator("main h2")).to_have_text("Континуитет")
    await clean(auditor, "continuity, in Macedonian")
    await shot(auditor, f"axe-continuity-{size}")
    assert not errors, errors


async def test_the_axe_check_finds_a_planted_violation(
    browser: Browser, broker: BrokerProcess
) -> None:
    """The check can fail: a field without a label and text too faint to read are found."""
    page = await axe_page(browser, "phone")
    await page.goto(f"{broker.url}/")
    await expect(page.locator("#signin")).to_be_visible()
    await page.evaluate(
        """() => {
            const input = document.createElement("input");
            document.querySelector("#signin").append(input);
            const faint = document.createElement("p");
            faint.textContent = "faint";
            faint.style.color = "#eeeeee";
            document.querySelector("#signin").append(faint);
        }"""
    )
    found = {v["id"] for v in await violations(page)}
    assert {"label", "color-contrast"} <= found, found
