"""Setting up two-factor authentication in the web UI (My account): the QR code and the
secret on the page, confirming with a first code (computed here with pyotp from the secret
read off the page), the recovery codes shown once, turning it off with password + code;
and ``identity.twofactor.required: all``, which sends an account without 2FA to enrol at
its next web sign-in (no session before) while its CLI password is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, new_context, shot, sign_in
from tests.support.authkit import add_user, hatchway_cli
from tests.support.server import Server
from tests.twofactor.conftest import code_at, start


def read_enrolment(page: Page, user: str) -> str:
    """The secret shown on the enrolment page (checked against its QR code's URI)."""
    qr = page.get_by_role("img", name="QR code of the setup link shown below")
    expect(qr).to_be_visible()
    assert (qr.get_attribute("src") or "").startswith("data:image/svg+xml")
    secret = page.get_by_label("Secret key").input_value()
    uri = page.get_by_label("Setup link").input_value()
    parsed = pyotp.parse_uri(uri)
    assert uri.startswith("otpauth://totp/hatchway:")
    assert parsed.name == user
    assert parsed.secret == secret
    return secret


def confirm(page: Page, code: str) -> list[str]:
    page.get_by_label("Code from the app").fill(code)
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    return [c.strip() for c in codes.all_inner_texts()]


def test_enrol_from_my_account_then_sign_in_and_turn_off(
    page: Page, context: BrowserContext, server: Server, user: str
) -> None:
    sign_in(page, user)
    page.goto("/ui/account")
    expect(page.locator("#twofactor")).to_contain_text("Off")
    page.get_by_role("link", name="Set up two-factor authentication").click()
    check_a11y(page)
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = read_enrolment(page, user)
    check_a11y(page)
    shot(page, "two-factor-enrol")
    page.get_by_label("Code from the app").fill("000000" if code_at(secret) != "000000" else "1")
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is incorrect")
    codes = confirm(page, code_at(secret))
    check_a11y(page)
    page.get_by_role("link", name="Continue").click()
    expect(page.locator("#twofactor")).to_contain_text("On")
    # The rule: the password alone is refused on the CLI side now.
    r = httpx.get(server.url + "/auth/token", auth=(user, PASSWORD))
    assert r.status_code == 401
    assert "two-factor authentication" in r.text
    # New recovery codes (a code from the app needed): the old list stops working.
    page.goto("/ui/account/twofactor")
    page.get_by_label("Code from the app").fill(code_at(secret, 1))
    page.get_by_role("button", name="Make new recovery codes").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    fresh = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(fresh).to_have_count(10)
    new = [c.strip() for c in fresh.all_inner_texts()]
    assert not set(new) & set(codes)
    # Sign out and back in: the second factor is asked for.
    page.get_by_role("button", name="Sign out").first.click()
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("incorrect or was already used")
    page.get_by_label("Code").fill(new[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/ui/repositories")
    # Turn it off: the password and a (recovery) code are both needed.
    page.goto("/ui/account/twofactor")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_label("Code", exact=True).fill(new[1])
    page.get_by_role("button", name="Turn off two-factor authentication").click()
    expect(page.get_by_role("alert")).to_contain_text("the password is incorrect")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Code", exact=True).fill(new[1])
    page.get_by_role("button", name="Turn off two-factor authentication").click()
    expect(page.get_by_role("status")).to_have_text("Two-factor authentication is off.")
    assert httpx.get(server.url + "/auth/token", auth=(user, PASSWORD)).status_code == 200


@pytest.fixture(scope="module")
def required_all(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start(tmp_path_factory.mktemp("required-all"), "all")
    try:
        yield found
    finally:
        found.stop()


def test_required_all_forces_enrolment_at_sign_in(browser: Browser, required_all: Server) -> None:
    user = "forced1"
    add_user(required_all, user, PASSWORD)
    # The CLI password is refused until the account enrols.
    r = httpx.get(required_all.url + "/auth/token", auth=(user, PASSWORD))
    assert r.status_code == 401
    assert "must set up two-factor authentication" in r.text
    context = new_context(browser, required_all)
    try:
        page = context.new_page()
        page.goto("/ui/sign-in?next=/ui/account")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
        assert "hatchway_session" not in {c["name"] for c in context.cookies()}
        # No page of the UI without a session.
        page.goto("/ui/repositories")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.go_back()
        expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
        secret = read_enrolment(page, user)
        check_a11y(page)
        confirm(page, code_at(secret))
        check_a11y(page)
        page.get_by_role("link", name="Continue").click()
        page.wait_for_url("**/ui/account")
        r = httpx.get(required_all.url + "/auth/token", auth=(user, PASSWORD))
        assert r.status_code == 401
        assert "uses two-factor authentication" in r.text
        # An admin resets the account's 2FA: its live session may only enrol again.
        hatchway_cli(required_all.data, "user", "twofactor-reset", user)
        # Another process changed the database: the server sees it within a second.
        for _ in range(50):
            page.goto("/ui/repositories")
            if page.url.endswith("/ui/account/twofactor"):
                break
            time.sleep(0.1)
        assert page.url.endswith("/ui/account/twofactor")
        expect(page.get_by_role("alert")).to_contain_text("requires a second factor")
    finally:
        context.close()


def test_two_factor_pages_pass_axe_in_the_dark_theme(
    browser: Browser, server: Server, user: str
) -> None:
    context = new_context(browser, server, color_scheme="dark")
    try:
        page = context.new_page()
        sign_in(page, user)
        page.goto("/ui/account/twofactor")
        check_a11y(page)
        page.get_by_role("button", name="Set up an authenticator app").click()
        secret = read_enrolment(page, user)
        check_a11y(page)
        confirm(page, code_at(secret))
        check_a11y(page)
        page.get_by_role("button", name="Sign out").first.click()
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
        check_a11y(page)
    finally:
        context.close()
