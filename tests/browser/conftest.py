"""Browser tests of the web UI: Playwright (from PyPI) drives Debian's Chromium
(``/usr/bin/chromium``; nothing is downloaded at test time) against a real
``hatchway serve`` in token mode.

Helpers: ``sign_in``, ``check_a11y`` (axe-core from ``node_modules``, installed by
``scripts/test`` with ``npm ci`` from this directory's lock file, evaluated in the page:
DevTools evaluation is not subject to the page's CSP, so the CSP stays as served) and
``shot`` (a PNG in docs/screenshots/ when ``HATCHWAY_SCREENSHOTS=1``, so ordinary runs
leave the tree clean).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.support.authkit import ADMIN, ADMIN_PASSWORD, add_user, token_config
from tests.support.server import Server, start_server

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = HERE.parent.parent / "docs" / "screenshots"
PASSWORD = "browser-Pw-0123"
SERIOUS = frozenset({"serious", "critical"})

_names = iter(range(1_000_000))


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start_server(
        tmp_path_factory.mktemp("browser"),
        config=token_config(),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    assert CHROMIUM.exists(), "Debian's chromium is missing: run ./scripts/test (apt chromium)"
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
    try:
        yield launched
    finally:
        launched.close()


def new_context(browser: Browser, server: Server, **options: Any) -> BrowserContext:
    context = browser.new_context(base_url=server.url, **options)
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    made = new_context(browser, server)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    opened = context.new_page()
    # A script dialog would mean injected markup ran: fail the test that caused it.
    opened.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message!r}"))
    return opened


@pytest.fixture
def user(server: Server) -> str:
    """A fresh account (password PASSWORD), made with the CLI."""
    name = f"web{next(_names)}"
    add_user(server, name, PASSWORD)
    return name


def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    page.goto("/ui/sign-in")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/repositories**")


def sign_in_admin(page: Page) -> None:
    sign_in(page, ADMIN, ADMIN_PASSWORD)


def check_a11y(page: Page) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    assert AXE.exists(), "axe-core is missing: run ./scripts/test (npm ci in tests/browser)"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in result["violations"]
        if v["impact"] in SERIOUS
    ]
    assert not bad, f"{page.url}: " + "; ".join(bad)


def shot(page: Page, name: str) -> None:
    """Save a screenshot for the README when HATCHWAY_SCREENSHOTS=1."""
    if os.environ.get("HATCHWAY_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
