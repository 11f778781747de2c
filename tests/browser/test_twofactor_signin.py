"""Until the web UI asks for a second factor, an account with one is told at sign-in why
its password alone is refused (rather than "incorrect password")."""

from __future__ import annotations

import httpx
import pyotp
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD
from tests.support.server import Server
from tests.twofactor.conftest import code_at


def test_sign_in_says_why_a_2fa_password_is_refused(page: Page, server: Server, user: str) -> None:
    api = server.url + "/api/v1/me/twofactor/totp"
    started = httpx.post(api, auth=(user, PASSWORD))
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    assert pyotp.parse_uri(started.json()["uri"]).name == user
    done = httpx.post(api + "/confirm", json={"code": code_at(secret)}, auth=(user, PASSWORD))
    assert done.status_code == 200, done.text
    page.goto("/ui/sign-in")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("two-factor authentication")
    expect(page.get_by_role("alert")).to_contain_text("hatchway login --sso")
