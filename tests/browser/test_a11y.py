"""Keyboard-only use, and axe-core on the pages in the light and the dark theme (the
dark theme follows the system setting: prefers-color-scheme)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, new_context, shot, sign_in
from tests.support.server import Server

PAGES = ("/ui/sign-in", "/ui/account", "/ui/nowhere")


def test_keyboard_only_sign_in_and_token(page: Page, user: str) -> None:
    """Sign in and make a token with the keyboard alone: Tab, typing, Enter."""
    page.goto("/ui/sign-in")
    expect(page.get_by_label("Username")).to_be_focused()  # autofocus
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/repositories**")
    page.goto("/ui/account")
    page.get_by_label("Name").focus()
    page.keyboard.type("by-keys")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Scopes")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Expires after")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Create token")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Token “by-keys” created")).to_be_visible()
    # Revoke it from the keyboard too: focus lands on the button by tabbing.
    page.goto("/ui/account")
    button = page.get_by_role("button", name="Revoke token by-keys")
    for _ in range(40):
        page.keyboard.press("Tab")
        if button.evaluate("b => b === document.activeElement"):
            break
    expect(button).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("The token is revoked.")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_pass_axe_in_both_themes(
    browser: Browser, server: Server, user: str, scheme: str
) -> None:
    context = new_context(browser, server, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto("/ui/sign-in")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(15, 20, 25)" if scheme == "dark" else "rgb(255, 255, 255)")
        check_a11y(page)
        sign_in(page, user)
        for path in PAGES[1:]:
            page.goto(path)
            check_a11y(page)
        if scheme == "dark":
            page.goto("/ui/account")
            shot(page, "my-account-dark")
    finally:
        context.close()


def test_narrow_screen_has_no_sideways_scrolling(
    browser: Browser, server: Server, user: str
) -> None:
    context = new_context(browser, server, viewport={"width": 375, "height": 740})
    try:
        page = context.new_page()
        sign_in(page, user)
        page.goto("/ui/account")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        check_a11y(page)
    finally:
        context.close()
