"""The web inbox checks agency keys against the root pinned at sign-in, in Chromium.

The broker's host inserts a key for mk-mvr into its own tables and posts a notice signed with
it (THREATS.md, "The broker's own host"); the page, given the administrators' root at sign-in,
refuses it in red, names the reason, and offers nothing to acknowledge. The page's canonical
JSON, on which every TUF signature rests, is byte-for-byte securesystemslib's.
"""

# The browser and broker fixtures come from test_web_inbox: tests name them as parameters.
# ruff: noqa: F811

from __future__ import annotations

import json
import shutil
from pathlib import Path

from playwright.async_api import Browser, expect
from securesystemslib.formats import encode_canonical
from tuf.api.metadata import Metadata

from adapters.client.trust import PinnedRoot
from tests.e2e.test_web_inbox import EXAMPLE, broker, browser, shot, sign_in  # noqa: F401 - fixtures
from tests.fault.harness import BrokerProcess, sender
from tests.fault.test_host_forgery import forge
from tests.unit.test_trust import _directory as small_directory

TRICKY = {
    "b": 1,
    "a": ["ü", '"q\\', "😀", "\uffff", "tab\there", "", -7, 0],
    "é": None,
    "Z": True,
    "😀k": False,
    "\uffffk": {"nested": {"z": [], "y": {}}},
}


async def test_a_key_the_host_inserted_is_refused_in_red_in_the_page(
    browser: Browser, broker: BrokerProcess, demo_dir: Path, tmp_path: Path
) -> None:
    pinned = tmp_path / "root.json"  # enrolment: the root reaches the device before any attack
    shutil.copy(demo_dir / "trust" / "root.json", pinned)
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        genuine = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    forged_id, forged_key = await forge(demo_dir, broker.url)

    page = await browser.new_page()
    await page.goto(f"{broker.url}/")
    await page.select_option("#language", "en")  # the reader's choice over the directory's mk
    await sign_in(page, broker.url, demo_dir / "keys", "mk-kumanovo-pcve", root=pinned)
    await page.goto(f"{broker.url}/ui/#/notice/{genuine}")
    await expect(page.locator("#verdict")).to_have_class("verdict ok")
    await expect(page.locator("#verdict")).to_contain_text("verified against the signed directory")
    # The root the page checks against is shown by its fingerprint, as the SDK computes it.
    fingerprint = PinnedRoot.from_file(pinned).fingerprint
    await expect(page.locator("#root-fingerprint")).to_have_text(f"{fingerprint[:16]}…")

    await page.goto(f"{broker.url}/ui/#/notice/{forged_id}")
    verdict = page.locator("#verdict")
    await expect(verdict).to_have_class("verdict bad")
    await expect(verdict).to_contain_text(f"key {forged_key} is not in the signed directory")
    await expect(page.locator("#ack")).to_have_count(0)
    await expect(page.locator("#subject")).to_have_count(0)
    color = await verdict.evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(161, 22, 29)", color  # --bad: the page says it in red
    await shot(page, "10-forged-key-refused")


async def test_without_a_pinned_root_nothing_is_called_verified(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    async with sender(demo_dir, broker.url, "mk-mvr") as ministry:
        notice_id = (await ministry.post_notice(json.loads(EXAMPLE.read_text()))).body["id"]
    keys = demo_dir / "keys"
    page = await browser.new_page()
    await page.goto(f"{broker.url}/")
    await page.select_option("#language", "en")  # the reader's choice over the directory's mk
    await page.fill("#principal", "mk-kumanovo-pcve")
    await page.set_input_files("#signing-key", str(keys / "mk-kumanovo-pcve.pem"))
    await page.set_input_files("#encryption-key", str(keys / "mk-kumanovo-pcve.x25519.pem"))
    await page.click("#signin-button")
    await expect(page.locator("#who")).to_have_text("mk-kumanovo-pcve")  # signed in: keys loaded
    await page.goto(f"{broker.url}/ui/#/notice/{notice_id}")
    await expect(page.locator("#verdict")).to_have_class("verdict bad")
    await expect(page.locator("#verdict")).to_contain_text("no directory root was given")


async def test_the_pages_canonical_json_is_securesystemslibs(
    browser: Browser, broker: BrokerProcess, demo_dir: Path
) -> None:
    page = await browser.new_page()
    await page.goto(f"{broker.url}/ui/")
    bindings = (demo_dir / "trust" / "bindings.json").read_text()
    script = """async ([tricky, bindings]) => {
        const trust = await import("/ui/trust.js");
        return [trust.canonical(tricky), trust.canonical(JSON.parse(bindings).signed)];
    }"""
    ours, theirs = await page.evaluate(script, [TRICKY, bindings])
    assert ours.encode() == encode_canonical(TRICKY).encode()
    assert theirs.encode() == Metadata.from_bytes(bindings.encode()).signed_bytes


async def test_the_page_refuses_rotations_and_bindings_the_python_core_refuses(
    browser: Browser, broker: BrokerProcess
) -> None:
    from datetime import UTC, datetime, timedelta

    from broker.crypto.keys import generate
    from broker.trust import build

    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=9)
    a, b, c = (generate("ed25519") for _ in range(3))

    def root(keys: list, version: int, signers: list) -> str:  # type: ignore[type-arg]
        md = build.new_root(
            [build.public_key(k) for k in keys], threshold=2, expires=later, version=version
        )
        build.sign(md, [build.signer(k) for k in signers])
        return build.to_bytes(md).decode()

    def bindings(signers: list, version: int = 1) -> str:  # type: ignore[type-arg]
        md = build.bindings_metadata(
            small_directory(),
            version=version,
            expires=later,
        )
        build.sign(md, [build.signer(k) for k in signers])
        return build.to_bytes(md).decode()

    page = await browser.new_page()
    await page.goto(f"{broker.url}/ui/")
    script = """async ([pinned, rotations, data, min]) => {
        const trust = await import("/ui/trust.js");
        try {
            let root = trust.parseRoot(pinned);
            for (const r of rotations) root = trust.updateRoot(root, r);
            return "OK " + trust.verifyBindings(root, data, new Date(), min).version;
        } catch (e) { return e.message; }
    }"""
    v1 = root([a, b], 1, [a, b])
    cases = {
        "genuine": ([v1, [], bindings([a, b]), 0], "OK 1"),
        "one of two": (
            [v1, [], bindings([a]), 0],
            "the key bindings are not signed by the root's threshold",
        ),
        "rolled back": (
            [v1, [], bindings([a, b], 2), 3],
            "the signed key bindings went back from version 3 to 2",
        ),
        "rotation by old and new": (
            [v1, [root([b, c], 2, [a, b, c])], bindings([b, c]), 0],
            "OK 1",
        ),
        "rotation by new only": (
            [v1, [root([b, c], 2, [b, c])], bindings([b, c]), 0],
            "the new root is not signed by the current root",
        ),
        "rotation by old only": (
            [v1, [root([b, c], 2, [a, b])], bindings([b, c]), 0],
            "the new root is not signed by its own threshold",
        ),
    }
    for name, (args, expected) in cases.items():
        assert await page.evaluate(script, args) == expected, name
