"""The auditor's page keeps verifying across a log key rotation, in Chromium, and notices a key
that no pinned key vouched for.

The page pins the checkpoint key in the browser at its first check. After `liaison keys rotate
log` the checkpoints carry the old key's signature beside the new one's, so the page accepts the
new key on the old one's word and pins it. The broker's host (the attacker) replacing the log key
without an overlap, so that no signature by the pinned key vouches for the new one, is refused.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, expect

from broker.cli.main import main as liaison
from tests.e2e.test_web_inbox import broker, browser, sign_in, watch_errors  # noqa: F401 - fixtures
from tests.fault.harness import BrokerProcess

AUDITOR = "mk-ombudsman-auditor"


async def verified(page: Page) -> str:
    await page.click("#verify")
    report = page.locator("#verify-report")
    await expect(report.locator("li")).not_to_have_count(0)
    await page.wait_for_function(
        "() => { const r = document.querySelector('#verify-report');"
        " return r && (r.querySelector('li.bad') || r.textContent.includes('Merkle root')); }",
        timeout=20_000,
    )
    return await report.inner_text()


def restart_after(process: BrokerProcess, data: Path, *changes: list[str]) -> None:
    process.stop()
    for change in changes:
        assert liaison(["keys", *change, "--data", str(data)]) == 0
    process.start()


def log_kids(data: Path) -> list[str]:
    import json

    entries = json.loads((data / "keys" / "purposes.json").read_text())["keys"]["log"]
    return [e["kid"] for e in entries]


async def test_the_page_follows_a_rotation_and_refuses_a_key_nobody_vouched_for(
    browser: Browser,  # noqa: F811 - the imported fixture
    broker: BrokerProcess,  # noqa: F811
    demo_dir: Path,
) -> None:
    page = await browser.new_page()
    errors = watch_errors(page)
    await sign_in(page, broker.url, demo_dir / "keys", AUDITOR)
    assert "pinned in this browser from now on" in await verified(page)

    (first,) = log_kids(demo_dir)
    restart_after(broker, demo_dir, ["rotate", "log"])
    text = await verified(page)
    assert "is the log's new key" in text and "✗" not in text

    restart_after(broker, demo_dir, ["remove", "log", first])  # the overlap ends
    text = await verified(page)
    assert "is the one this browser pinned" in text and "✗" not in text

    second = log_kids(demo_dir)[0]
    restart_after(broker, demo_dir, ["rotate", "log"], ["remove", "log", second])  # no overlap
    text = await verified(page)
    assert "changed since this browser last verified" in text
    await expect(page.locator("#verify-report li.bad")).to_have_count(1)
    assert not errors, errors
