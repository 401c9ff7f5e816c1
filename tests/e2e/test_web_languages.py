"""The web inbox in each of the region's eight languages, in Debian's Chromium.

Kumanovo's two focal points are given Serbian Cyrillic and Montenegrin in the directory; each
signs in to a browser set to American English and reads the page in their directory language
without touching the switch. Then one reads the same notice in each of the eight languages
through the switch: translated labels, the signature line with its names filled in (the signing
ministry's name as the signed key bindings give it in that language), the channel's title, the
municipality's name and a field's label from the policy and directory files, and the sending
date day first (never US order). A screenshot per language goes to tests/_artifacts/web/.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect

from broker.locale import match
from tests.e2e.test_web_inbox import EXAMPLE, shot, sign_in, watch_errors
from tests.fault.harness import BrokerProcess, sender

pytest_plugins = ["tests.e2e.test_web_inbox"]  # its browser and broker fixtures

ZONE = "Europe/Skopje"
# Written out here, not read from the catalogs, so a wrong or missing catalog fails the test.
TAGLINE = {
    "en": "Secure notices between agencies and municipalities",
    "sq": "Njoftime të sigurta mes agjencive dhe bashkive",
    "bs": "Sigurna obavještenja između agencija i općina",
    "hr": "Sigurne obavijesti između agencija i općina",
    "sr-Latn": "Bezbedna obaveštenja između agencija i opština",
    "sr-Cyrl": "Безбедна обавештења између агенција и општина",
    "cnr": "Bezbjedna obavještenja između agencija i opština",
    "mk": "Безбедни известувања меѓу агенции и општини",
}
ACKNOWLEDGE = {
    "en": "Acknowledge",
    "sq": "Konfirmo marrjen",
    "bs": "Potvrdi prijem",
    "hr": "Potvrdi primitak",
    "sr-Latn": "Potvrdi prijem",
    "sr-Cyrl": "Потврди пријем",
    "cnr": "Potvrdi prijem",
    "mk": "Потврди прием",
}
SENT = {
    "en": "Sent",
    "sq": "Dërguar",
    "bs": "Poslano",
    "hr": "Poslano",
    "sr-Latn": "Poslato",
    "sr-Cyrl": "Послато",
    "cnr": "Poslato",
    "mk": "Испратено",
}
# Names from the policy and directory files (broker.titles), as the shipped files give them.
CHANNEL = {
    "en": "Returnee repatriation",
    "sq": "Riatdhesimi i të kthyerve",
    "bs": "Repatrijacija povratnika",
    "hr": "Repatrijacija povratnika",
    "sr-Latn": "Repatrijacija povratnika",
    "sr-Cyrl": "Репатријација повратника",
    "cnr": "Repatrijacija povratnika",
    "mk": "Репатријација на повратници",
}
PLACE = {"en": "Kumanovo", "sq": "Kumanovë", "sr-Cyrl": "Куманово", "mk": "Куманово"}
MINISTRY = {  # signed in the key bindings: the verdict line's "signed by"
    "en": "Ministry of Interior of North Macedonia",
    "sq": "Ministria e Punëve të Brendshme e Maqedonisë së Veriut",
    "bs": "Ministarstvo unutrašnjih poslova Sjeverne Makedonije",
    "hr": "Ministarstvo unutarnjih poslova Sjeverne Makedonije",
    "sr-Latn": "Ministarstvo unutrašnjih poslova Severne Makedonije",
    "sr-Cyrl": "Министарство унутрашњих послова Северне Македоније",
    "cnr": "Ministarstvo unutrašnjih poslova Sjeverne Makedonije",
    "mk": "Министерство за внатрешни работи на Северна Македонија",
}
ADULTS = {"en": "Adults", "sq": "Të rritur", "mk": "Возрасни"}  # a field's label
DIRECTORY_LANGUAGE = {"mk-kumanovo-pcve": "sr-Cyrl", "mk-kumanovo-swc": "cnr"}


@pytest.fixture
def languages_in_directory(demo_dir: Path) -> Path:
    """Give two demo contacts other languages in the store, before the broker starts."""
    db = sqlite3.connect(demo_dir / "liaison.db")
    with db:
        for contact, language in DIRECTORY_LANGUAGE.items():
            db.execute("update contact set language = ? where id = ?", (language, contact))
    db.close()
    return demo_dir


@pytest.fixture
def broker(languages_in_directory: Path) -> Any:
    process = BrokerProcess(languages_in_directory)
    process.start()
    yield process
    process.stop()


async def american_page(browser: Browser) -> Page:
    """A browser whose own language is US English, in the region's time zone."""
    context = await browser.new_context(locale="en-US", timezone_id=ZONE)
    return await context.new_page()


def sent_at(demo_dir: Path, notice_id: str) -> datetime:
    db = sqlite3.connect(demo_dir / "liaison.db")
    (created,) = db.execute("select created_at from notice where id = ?", (notice_id,)).fetchone()
    db.close()
    when = datetime.fromisoformat(str(created))
    return when.replace(tzinfo=when.tzinfo or ZoneInfo("UTC")).astimezone(ZoneInfo(ZONE))


async def test_the_directory_language_and_each_of_the_eight_through_the_switch(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    keys = demo_dir / "keys"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    local = sent_at(demo_dir, notice_id)

    for contact, language in DIRECTORY_LANGUAGE.items():
        page = await american_page(browser)
        errors = watch_errors(page)
        await page.goto(f"{broker.url}/")
        await expect(page.locator("#tagline")).to_have_text(TAGLINE["en"])  # the browser's
        await sign_in(page, broker.url, keys, contact)
        await expect(page.locator("#tagline")).to_have_text(TAGLINE[language])  # the directory's
        assert await page.evaluate("document.documentElement.lang") == language
        assert await page.input_value("#language") == language
        assert not errors, errors

    for language in TAGLINE:  # the last page: Montenegrin's focal point, through the switch
        await page.select_option("#language", language)
        await page.goto(f"{broker.url}/ui/#/notice/{notice_id}")
        await expect(page.locator("#tagline")).to_have_text(TAGLINE[language])
        await expect(page.locator("#ack")).to_have_text(ACKNOWLEDGE[language])
        verdict = await page.locator("#verdict").text_content() or ""
        assert MINISTRY[language] in verdict and "{" not in verdict, verdict
        await expect(page.locator("#meta-channel")).to_have_text(CHANNEL[language])
        if language in PLACE:
            await expect(page.locator("#meta-jurisdiction")).to_have_text(PLACE[language])
        if language in ADULTS:
            adults = page.locator('table.fields tr[data-field="adults"] th')
            await expect(adults).to_have_text(ADULTS[language])
        sent = page.locator("dl.meta dt", has_text=re.compile(f"^{SENT[language]}$"))
        shown = await sent.locator("xpath=following-sibling::dd[1]").text_content() or ""
        day_first = re.match(r"^0?(\d{1,2})\D+0?(\d{1,2})\D+(\d{4})\D+(\d{2}):(\d{2})", shown)
        assert day_first, f"{language}: {shown!r}"
        assert tuple(map(int, day_first.groups())) == (
            local.day,
            local.month,
            local.year,
            local.hour,
            local.minute,
        ), f"{language}: {shown!r} is not {local:%d.%m.%Y %H:%M}"
        await shot(page, f"lang-{language}")

    # The choice made with the switch is kept on this device, over the directory's language.
    await page.select_option("#language", "hr")
    await page.reload()
    await expect(page.locator("#tagline")).to_have_text(TAGLINE["hr"])
    await sign_in(page, broker.url, keys, "mk-kumanovo-swc")
    await expect(page.locator("#tagline")).to_have_text(TAGLINE["hr"])
    assert not errors, errors


async def test_the_page_matches_language_tags_as_the_broker_does(
    browser: Browser, broker: BrokerProcess
) -> None:
    tags = ["en-GB", "sq-XK", "bs-Latn-BA", "hr-HR", "sr", "sr-ME", "sr_Latn", "SR-CYRL"]
    tags += [
        "sr-Cyrl-BA",
        "sr-RS-Cyrl",
        "cnr",
        "cnr-ME",
        "me",
        "mk-MK",
        "de",
        "x-klingon",
        "toString",
    ]
    page = await american_page(browser)
    await page.goto(f"{broker.url}/")
    found = await page.evaluate(
        "async (tags) => { const m = await import('/ui/i18n.js');"
        " return tags.map((tag) => m.match(tag) || 'en'); }",
        tags,
    )
    assert found == [match(tag) for tag in tags]
    # Every catalog is served, as JSON, under the page's strict policy.
    for language in TAGLINE:
        response = await page.request.get(f"{broker.url}/ui/locales/{language}.json")
        assert response.ok and response.headers["content-type"].startswith("application/json")
        assert (await response.json())["tagline"] == TAGLINE[language]


async def download(page: Page) -> bytes:
    async with page.expect_download() as info:
        await page.click("#download-cap")
    path = await (await info.value).path()
    return await asyncio.to_thread(Path(path).read_bytes)  # a small file, off the loop


async def test_a_two_language_cap_alert_posted_as_xml_reads_in_the_page_language_and_downloads_as_cap(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    """The Bureau posts a signed alert in English and Macedonian as application/cap+xml; the
    mayor's page shows the mk-MK block in Macedonian and the en block in English, the XML
    signature verified in the page (an altered copy: failed; an unsigned one: not signed), and
    "Download as CAP 1.2" gives the very XML `liaison read --cap` prints, valid against the XSD —
    for the posted alert (its original) and for a JSON notice (built in the page)."""
    from broker.cap.languages import page_language
    from tests.integration.test_cap import (
        DATA,
        MK_HEADLINE,
        run_cli,
        schema_valid,
        signed,
        two_languages,
    )

    english = "Heightened risk around the Saturday market gathering"
    alert = (DATA / "restricted-security.xml").read_bytes().replace(b"2026-12-31", b"2099-12-31")
    data = signed(two_languages(alert.replace(b"0042", b"0042-page")))
    changed = data.replace(b"avoid public statements", b"make public statements")
    plain = {
        "channel": "public-safety-alert",
        "jurisdiction": "mk-kumanovo",
        "severity": "medium",
        "subject": "Water & power <interrupted> in the old town",
        "expires_at": "2099-01-01T00:00:00Z",
        "body": {
            "event": "Outage",
            "urgency": "Expected",
            "certainty": "Likely",
            "cap_identifier": "none",
            "description": 'Until Friday & after: "ČŠŽ"',
        },
    }
    async with sender(demo_dir, broker.url, "mk-bjb") as bureau:
        posted = (await bureau.post_cap(data)).body["id"]
        altered = (await bureau.post_cap(changed.replace(b"0042-page", b"0042-altered"))).body["id"]
        unsigned = (await bureau.post_cap(alert.replace(b"0042", b"0042-plain"))).body["id"]
        built = (await bureau.post_notice(plain)).body["id"]
    page = await american_page(browser)
    errors = watch_errors(page)
    await sign_in(page, broker.url, demo_dir / "keys", "mk-kumanovo-mayor")
    for language, headline, other in (
        ("mk", MK_HEADLINE, "en (English)"),
        ("en", english, "mk-MK"),
    ):
        await page.select_option("#language", language)
        await page.goto(f"{broker.url}/ui/#/notice/{posted}")
        await expect(page.locator("#subject")).to_have_text(headline)
        await expect(page.locator("#verdict")).to_have_class("verdict ok")
        await expect(page.locator("#cap-languages")).to_contain_text(other)
        await expect(page.locator("#cap-signature")).to_have_attribute("data-status", "valid")
        await expect(page.locator("#cap-signer")).to_contain_text("CN=alerts.mk-bjb.demo.invalid")
        await shot(page, f"cap-{language}")
    assert "проверен" not in (await page.locator("#cap-signature").text_content() or "")
    exported = await download(page)
    assert exported == data and schema_valid(exported)

    await page.goto(f"{broker.url}/ui/#/notice/{altered}")
    await expect(page.locator("#cap-signature")).to_have_attribute("data-status", "invalid")
    await expect(page.locator("#cap-signature")).to_contain_text("Digest mismatch")
    await page.goto(f"{broker.url}/ui/#/notice/{unsigned}")
    await expect(page.locator("#cap-signature")).to_have_attribute("data-status", "absent")
    await expect(page.locator("#cap-languages")).to_have_count(0)

    await page.goto(f"{broker.url}/ui/#/notice/{built}")
    await expect(page.locator("#subject")).to_have_text(plain["subject"])
    exported = await download(page)
    cli = run_cli(
        "read", built, "--cap", "--data", demo_dir, "--url", broker.url, "--as", "mk-kumanovo-mayor"
    )
    assert cli.returncode == 0, cli.stderr
    assert exported == cli.stdout.encode() and schema_valid(exported)
    # The page maps CAP language tags as broker/cap/languages.py does.
    tags = ["mk-MK", "sq-XK", "sr", "sr-RS", "sr-Cyrl-RS", "hr-HR", "bs-BA", "cnr-ME", "me"]
    tags += ["en-US", "fr-CA", ""]
    found = await page.evaluate(
        "async (tags) => { const m = await import('/ui/cap.js');"
        " return tags.map((tag) => m.pageLanguage(tag)); }",
        tags,
    )
    assert found == [page_language(tag) for tag in tags]
    assert not errors, errors


PAGES = Path(__file__).resolve().parents[2] / "broker" / "web" / "static" / "locales"
# Each view with the page it is drawn on, its address and the catalog key of its heading.
VIEWS = {
    "signin": ("out", "#/", "signin"),
    "enrol": ("out", "#/enrol", "enrol_title"),
    "inbox": ("contact", "#/inbox", "inbox"),
    "agency": ("agency", "#/status", "status"),
    "audit": ("auditor", "#/audit", "audit"),
}


async def test_every_view_in_each_of_the_eight_languages_fits_a_phone(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    """Sign-in, enrolment, the inbox, the agency's list and the audit log (the notice and the
    continuity page have tests of their own) at 390x844 in each language: the heading in that
    language, no sideways scrolling, and a screenshot each in tests/_artifacts/web/."""
    from tests.e2e.test_web_pages import new_page, overflow

    keys = demo_dir / "keys"
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        await ministry.post_notice(json.loads(EXAMPLE.read_text()))  # a row in every list
    pages = {on: await new_page(browser, "phone") for on in ("out", "contact", "agency", "auditor")}
    errors = [watch_errors(page) for page in pages.values()]
    await pages["out"].goto(f"{broker.url}/ui/")
    await sign_in(pages["contact"], broker.url, keys, "mk-kumanovo-pcve")
    await sign_in(pages["agency"], broker.url, keys, "mk-mvr", agency=True)
    await sign_in(pages["auditor"], broker.url, keys, "mk-ombudsman-auditor")
    english = json.loads((PAGES / "en.json").read_text())
    for code in TAGLINE:
        catalog = json.loads((PAGES / f"{code}.json").read_text())
        for name, (on, address, heading) in VIEWS.items():
            page = pages[on]
            await page.select_option("#language", code)
            await page.goto(f"{broker.url}/ui/{address}")
            await expect(page.locator("#tagline")).to_have_text(TAGLINE[code])
            await expect(page.locator("main h2").first).to_have_text(catalog[heading])
            assert code == "en" or catalog[heading] != english[heading], (code, heading)
            assert await overflow(page) <= 0, f"{name} in {code} scrolls sideways"
            await shot(page, f"lang-{code}-{name}")
    assert not [e for found in errors for e in found], errors
