"""Sign in and out, the wrong-password message, the session cookie's flags, the security
headers, and sessions their owner lists and ends."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, new_context, shot, sign_in
from tests.support.server import Server


def test_root_leads_to_sign_in_and_v2_is_unchanged(page: Page, server: Server) -> None:
    page.goto("/")
    expect(page).to_have_url(server.url + "/ui/sign-in")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    check_a11y(page)
    shot(page, "sign-in")
    r = httpx.get(server.url + "/v2/")
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("application/json")


def test_security_headers(server: Server) -> None:
    for path in ("/ui/sign-in", "/ui/account", "/ui/nowhere", "/ui/static/ui.css"):
        r = httpx.get(server.url + path)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"


def test_wrong_password_is_shown_in_the_page(page: Page, user: str) -> None:
    page.goto("/ui/sign-in")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    expect(page.get_by_label("Username")).to_have_value(user)
    check_a11y(page)
    # Unknown accounts get the very same message.
    page.get_by_label("Username").fill("nobody-here")
    page.get_by_label("Password").fill("whatever")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")


def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session(
    page: Page, context: BrowserContext, server: Server, user: str
) -> None:
    sign_in(page, user)
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["hatchway_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["value"].startswith("hws_")
    assert page.evaluate("document.cookie") == ""  # no script can read it
    page.goto("/ui/account")
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    page.get_by_role("button", name="Sign out").first.click()
    expect(page).to_have_url(server.url + "/ui/sign-in")
    # The old cookie is dead on the server, not only forgotten by the browser.
    r = httpx.get(server.url + "/ui/account", cookies={"hatchway_session": session["value"]})
    assert r.status_code == 303
    assert r.headers["Location"].startswith("/ui/sign-in")
    api = httpx.get(server.url + "/api/v1/me", cookies={"hatchway_session": session["value"]})
    assert api.status_code == 401


def test_signed_out_pages_send_to_sign_in_and_back(page: Page, server: Server, user: str) -> None:
    page.goto("/ui/account")
    expect(page).to_have_url(server.url + "/ui/sign-in?next=/ui/account")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(server.url + "/ui/account")


def test_owner_lists_and_ends_other_sessions(
    browser: Browser, page: Page, server: Server, user: str
) -> None:
    other = new_context(browser, server, user_agent="second-browser/1.0")
    try:
        second = other.new_page()
        sign_in(second, user)
        sign_in(page, user)
        page.goto("/ui/account#sessions")
        rows = page.locator("#sessions tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator("#sessions")).to_contain_text("second-browser/1.0")
        page.get_by_role("row", name="second-browser/1.0").get_by_role("button").click()
        expect(page.get_by_role("status")).to_have_text("The session has ended.")
        expect(rows).to_have_count(1)
        second.goto("/ui/account")
        expect(second).to_have_url(server.url + "/ui/sign-in?next=/ui/account")
    finally:
        other.close()
