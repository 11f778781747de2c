"""Signing in to the web UI with a second factor: after the right password an account with
2FA gets the "Two-factor authentication" page (and no session yet); a TOTP code or a
recovery code finishes the sign-in, a used code is refused, wrong codes are throttled, and
the password alone stays refused at /auth/token."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, shot
from tests.support.authkit import ADMIN, ADMIN_PASSWORD
from tests.support.server import Server
from tests.twofactor.conftest import code_at


def enrol_over_api(server: Server, user: str) -> tuple[str, list[str]]:
    api = server.url + "/api/v1/me/twofactor/totp"
    started = httpx.post(api, auth=(user, PASSWORD))
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    assert pyotp.parse_uri(started.json()["uri"]).name == user
    done = httpx.post(api + "/confirm", json={"code": code_at(secret)}, auth=(user, PASSWORD))
    assert done.status_code == 200, done.text
    return secret, list(done.json()["recovery_codes"])


def audit_trail(
    server: Server, user: str, event: str, *, outcome: str = "success", count: int
) -> list[dict[str, Any]]:
    """The account's events (newest first) once ``count`` are there: the server's audit
    sink writes in the background (bounded wait)."""
    found: list[dict[str, Any]] = []
    for _ in range(100):
        answer = httpx.get(
            server.url + "/api/v1/audit",
            params={"account": user, "event": event, "outcome": outcome},
            auth=(ADMIN, ADMIN_PASSWORD),
        )
        assert answer.status_code == 200, answer.text
        found = list(answer.json()["events"])
        if len(found) >= count:
            break
        time.sleep(0.1)
    return found


def password_step(page: Page, user: str) -> None:
    page.goto("/ui/sign-in?next=/ui/account")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()


def give_code(page: Page, code: str) -> None:
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Verify").click()


def session_cookie(context: BrowserContext) -> str | None:
    found = {c["name"]: c["value"] for c in context.cookies()}
    return found.get("hatchway_session")


def test_totp_code_completes_the_sign_in(
    page: Page, context: BrowserContext, server: Server, user: str
) -> None:
    secret, _ = enrol_over_api(server, user)
    password_step(page, user)
    assert session_cookie(context) is None  # no session before the second factor
    assert page.url.endswith("/ui/sign-in/two-factor")
    pending = [c for c in context.cookies() if c["name"] == "hatchway_signin"]
    assert pending
    assert pending[0]["httpOnly"] is True
    check_a11y(page)
    shot(page, "two-factor")
    # The next step's code: the enrolment took this step's.
    give_code(page, code_at(secret, 1))
    page.wait_for_url("**/ui/account")
    expect(page.get_by_role("heading", name="My account")).to_be_visible()
    assert (session_cookie(context) or "").startswith("hws_")
    # The pending sign-in was single-use: replaying its cookie leads back to sign in.
    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url("**/ui/sign-in")
    context.add_cookies(pending)  # type: ignore[arg-type]
    page.goto("/ui/sign-in/two-factor")
    expect(page).to_have_url(server.url + "/ui/sign-in?expired=1")
    # The CLI/token rule is unchanged: the password alone is still refused there.
    r = httpx.get(server.url + "/auth/token", auth=(user, PASSWORD))
    assert r.status_code == 401
    assert "two-factor authentication" in r.text


def test_recovery_code_signs_in_once(
    page: Page, context: BrowserContext, server: Server, user: str
) -> None:
    _, codes = enrol_over_api(server, user)
    password_step(page, user)
    give_code(page, codes[0].upper())  # case and dashes do not matter
    page.wait_for_url("**/ui/account")
    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url("**/ui/sign-in")
    password_step(page, user)
    give_code(page, codes[0])
    expect(page.get_by_role("alert")).to_have_text("That code is incorrect or was already used.")
    assert session_cookie(context) is None
    give_code(page, codes[1])
    page.wait_for_url("**/ui/account")
    logins = audit_trail(server, user, "login", count=2)
    assert [e["detail"].get("second_factor") for e in logins[:2]] == ["recovery", "recovery"]
    assert all(e["detail"]["via"] == "ui" for e in logins)
    failed = audit_trail(server, user, "twofactor.verify", outcome="failure", count=1)
    assert len(failed) == 1
    assert not any(codes[0] in str(e) for e in logins + failed)


def test_wrong_codes_are_throttled(page: Page, server: Server, user: str) -> None:
    enrol_over_api(server, user)
    password_step(page, user)
    statuses = []
    for guess in ("000000", "111111", "222222", "333333", "444444", "555555"):
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            give_code(page, guess)
        statuses.append(answer.value.status)
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")


def test_cancel_goes_back_to_the_password(page: Page, server: Server, user: str) -> None:
    enrol_over_api(server, user)
    password_step(page, user)
    page.get_by_role("button", name="Cancel and sign in again").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/ui/sign-in/two-factor")
    expect(page).to_have_url(server.url + "/ui/sign-in?expired=1")
    expect(page.get_by_role("alert")).to_contain_text("sign in again")
