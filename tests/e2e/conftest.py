"""One Chromium per test process, shared by every browser test.

Launching Debian's Chromium through Playwright costs about 2 s of CPU; the 27 browser tests
launched one each. Each test still gets fresh browser contexts (its own cookies, storage,
viewport and locale), and the ``browser`` fixture closes every context a test opened, so no
page state crosses from one test to the next. The shared browser lives in the session's event
loop, so every test here runs in that loop too (pytest-asyncio's documented recipe).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright
from pytest_asyncio import is_async_test

from tests.ci import cannot_run_here

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    in_session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if is_async_test(item) and HERE in Path(str(item.path)).parents:
            item.add_marker(in_session_loop, append=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        cannot_run_here(
            "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
        )
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()
