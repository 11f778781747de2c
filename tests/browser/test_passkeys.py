"""Passkeys as a second factor, with Chromium's virtual authenticator (CDP ``WebAuthn``):
register one on My account → Two-factor authentication, sign out, sign in with the
password and the passkey; a passkey alone makes the account a 2FA account (its password is
refused at /auth/token); deleting it, or an admin's 2FA reset, turns that off.

WebAuthn needs a secure context and a host name as the RP ID: the browser reaches the
server as ``http://localhost:PORT`` (a secure context, unlike a bare IP as RP ID)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, shot
from tests.browser.test_twofactor_signin import audit_trail
from tests.support.authkit import hatchway_cli
from tests.support.server import Server


def localhost(server: Server) -> str:
    return "http://localhost:" + server.url.rsplit(":", 1)[1]


@pytest.fixture
def local_page(browser: Browser, server: Server) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(base_url=localhost(server))
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def authenticator(page: Page) -> tuple[CDPSession, str]:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    made = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return cdp, str(made["authenticatorId"])


def credentials(cdp: CDPSession, authenticator_id: str) -> list[dict[str, Any]]:
    found = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    return list(found["credentials"])


def password_step(page: Page, user: str, target: str = "/ui/account") -> None:
    page.goto(f"/ui/sign-in?next={target}")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def add_passkey(page: Page, name: str) -> None:
    page.goto("/ui/account/twofactor")
    page.get_by_label("Passkey name").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("status")).to_have_text("The passkey is added.")
    expect(page.get_by_role("cell", name=name, exact=True)).to_be_visible()


def token_status(server: Server, user: str) -> int:
    return httpx.get(server.url + "/auth/token", auth=(user, PASSWORD)).status_code


def test_register_a_passkey_then_sign_in_with_it(
    local_page: Page, server: Server, user: str
) -> None:
    page = local_page
    cdp, auth_id = authenticator(page)
    password_step(page, user)
    page.wait_for_url("**/ui/account")
    add_passkey(page, "laptop")
    check_a11y(page)
    shot(page, "passkeys")
    stored = credentials(cdp, auth_id)
    assert len(stored) == 1
    assert stored[0]["rpId"] == "localhost"
    assert stored[0]["isResidentCredential"] is True
    # A passkey alone is a second factor: the password is refused where none can be asked.
    r = httpx.get(server.url + "/auth/token", auth=(user, PASSWORD))
    assert r.status_code == 401
    assert "two-factor authentication" in r.text

    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url("**/ui/sign-in")
    password_step(page, user)
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    assert "hatchway_session" not in {c["name"] for c in page.context.cookies()}
    check_a11y(page)
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url("**/ui/account")
    assert "hatchway_session" in {c["name"] for c in page.context.cookies()}
    # The authenticator's counter moved, and the server keeps the latest one.
    assert credentials(cdp, auth_id)[0]["signCount"] >= 1
    trail = audit_trail(server, user, "login", count=2)
    factors = [e["detail"].get("second_factor") for e in trail]
    assert len(factors) == 2
    assert set(factors) == {None, "passkey"}  # the first sign-in had no second factor

    # Deleting the only passkey turns 2FA off again.
    page.goto("/ui/account/twofactor")
    page.get_by_role("button", name="Delete passkey laptop").click()
    expect(page.get_by_role("status")).to_have_text("The passkey is removed.")
    expect(page.get_by_text("You have no passkeys.")).to_be_visible()
    assert token_status(server, user) == 200


def test_a_replayed_passkey_answer_is_refused(local_page: Page, server: Server, user: str) -> None:
    """The same signed answer posted twice: the first used up the pending sign-in (and
    the challenge), so the second gets no session."""
    page = local_page
    authenticator(page)
    password_step(page, user)
    page.wait_for_url("**/ui/account")
    add_passkey(page, "key")
    page.get_by_role("button", name="Sign out").first.click()
    password_step(page, user)
    posted: list[str] = []
    page.on(
        "request",
        lambda r: (
            posted.append(r.post_data or "")
            if r.url.endswith("/ui/sign-in/two-factor/passkey")
            else None
        ),
    )
    cookies = page.context.cookies()
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url("**/ui/account")
    assert len(posted) == 1
    # Replay it with the pending sign-in's cookie (and its CSRF seed) from before.
    jar = {c["name"]: c["value"] for c in cookies}
    again = httpx.post(
        server.url + "/ui/sign-in/two-factor/passkey",
        content=posted[0],
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        cookies=jar,
    )
    assert again.status_code == 401
    assert "hatchway_session" not in again.cookies


def test_admin_reset_removes_passkeys(local_page: Page, server: Server, user: str) -> None:
    page = local_page
    authenticator(page)
    password_step(page, user)
    page.wait_for_url("**/ui/account")
    add_passkey(page, "phone")
    assert token_status(server, user) == 401
    hatchway_cli(server.data, "user", "twofactor-reset", user)
    # Another process changed the database: the server sees it within a second (its cache).
    for _ in range(50):
        if token_status(server, user) == 200:
            break
        time.sleep(0.1)
    assert token_status(server, user) == 200
    page.goto("/ui/account/twofactor")
    expect(page.get_by_text("You have no passkeys.")).to_be_visible()


REGISTER_OVER_API = """async (name) => {
  const headers = {"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content};
  const asked = await fetch("/api/v1/me/twofactor/passkeys/options", {method: "POST", headers});
  if (!asked.ok) return {status: asked.status, text: await asked.text()};
  const {options} = await asked.json();
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
  let credential;
  try {
    credential = await navigator.credentials.create({publicKey});
  } catch (e) {
    return {status: 0, text: e.name};
  }
  const made = await fetch("/api/v1/me/twofactor/passkeys", {
    method: "POST",
    headers: Object.assign({"Content-Type": "application/json"}, headers),
    body: JSON.stringify({name, credential: credential.toJSON()}),
  });
  return {status: made.status, text: await made.text()};
}"""


def test_passkeys_over_the_api(local_page: Page, server: Server, user: str) -> None:
    page = local_page
    authenticator(page)
    password_step(page, user)
    page.wait_for_url("**/ui/account")
    made = page.evaluate(REGISTER_OVER_API, "from-api")
    assert made["status"] == 201, made
    api = server.url + "/api/v1/me/twofactor/passkeys"
    listed = httpx.get(api, auth=(user, PASSWORD))
    assert listed.status_code == 200, listed.text
    keys = listed.json()["passkeys"]
    assert [k["name"] for k in keys] == ["from-api"]
    me = httpx.get(server.url + "/api/v1/me", auth=(user, PASSWORD))
    assert me.status_code == 401  # Basic with the password: refused, 2FA is on
    # The options exclude the passkeys the account has: the authenticator refuses.
    again = page.evaluate(REGISTER_OVER_API, "again")
    assert again == {"status": 0, "text": "InvalidStateError"}
    gone = httpx.delete(f"{api}/{keys[0]['id']}", auth=(user, PASSWORD))
    assert gone.status_code == 204
    assert httpx.get(api, auth=(user, PASSWORD)).json() == {"passkeys": []}
    assert httpx.delete(f"{api}/{keys[0]['id']}", auth=(user, PASSWORD)).status_code == 404
