"""Sign in to the web UI with a real OpenID provider (oidc-provider 8), end to end in
Chromium: the link on the sign-in page, the provider's login form and consent page, and
back to hatchway signed in; the account it makes, its groups and admin status; and the
refusals a person can meet (cancelled at the provider, a forged or replayed state, a
name that is already another account's)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from playwright.sync_api import Browser, Page, Request, expect
from sqlalchemy import update

from hatchway.metadata.records import utcnow
from hatchway.metadata.tables import oidc_logins
from tests.browser.conftest import check_a11y, new_context
from tests.oidc.conftest import CALLBACK, Sso, audit_until, provider_sign_in, store_of
from tests.support.authkit import SERVICE, access_claim, add_user
from tests.twofactor.conftest import code_at

PASSWORD = "local-Pw-0123456"


def me(page: Page) -> dict[str, Any]:
    answer = page.request.get("/api/v1/me")
    assert answer.status == 200, answer.text()
    body = answer.json()
    assert isinstance(body, dict)
    return body


def test_first_sign_in_makes_a_federated_account(page: Page, sso: Sso) -> None:
    page.goto("/ui/sign-in")
    link = page.get_by_role("link", name="Sign in with 127.0.0.1")
    expect(link).to_be_visible()
    check_a11y(page)
    sso.provider.set_user("carol", groups=["devs", "qa"])
    provider_sign_in(page, "carol")
    page.wait_for_url("**/ui/repositories**")
    expect(page.locator(".who")).to_have_text("carol")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    found = me(page)
    assert found["name"] == "carol"
    assert found["backend"] == "oidc"
    assert found["admin"] is False
    assert {"devs", "qa"} <= set(found["groups"])
    page.goto("/ui/account")
    expect(page.locator("main")).to_contain_text("signed in with single sign-on")
    expect(page.locator("#password")).to_contain_text("there is no password here")
    check_a11y(page)
    # No password here: the account cannot sign in with one.
    r = httpx.get(sso.server.url + "/auth/token", auth=("carol", "any-password"))
    assert r.status_code == 401


def test_admin_follows_admingroups_both_ways_and_the_account_is_reused(
    browser: Browser, sso: Sso
) -> None:
    sso.provider.set_user("dora", groups=["registry-admins"])
    context = new_context(browser, sso.server)
    page = context.new_page()
    provider_sign_in(page, "dora")
    page.wait_for_url("**/ui/repositories**")
    expect(page.get_by_role("link", name="Admin")).to_be_visible()
    first = me(page)
    assert first["admin"] is True
    context.close()

    sso.provider.set_user("dora", groups=["devs"])  # taken out of the admin group
    context = new_context(browser, sso.server)
    page = context.new_page()
    provider_sign_in(page, "dora")
    page.wait_for_url("**/ui/repositories**")
    expect(page.locator(".who")).to_have_text("dora")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    second = me(page)
    assert second["admin"] is False
    assert second["created"] == first["created"]  # the same account, not a new one
    context.close()
    created = audit_until(sso.server, "dora", "account.create", bool)
    assert len(created) == 1
    logins = audit_until(sso.server, "dora", "login", lambda found: len(found) >= 2)
    assert [e.outcome for e in logins] == ["success", "success"]
    assert all(e.detail["source"] == "oidc" and e.detail["via"] == "ui" for e in logins)


def test_groups_from_the_provider_work_in_access_rules(page: Page, sso: Sso) -> None:
    sso.provider.set_user("evan", groups=["devs"])
    provider_sign_in(page, "evan")
    page.wait_for_url("**/ui/repositories**")
    secret = create_token(page)
    scope = "repository:team/app:pull,push"
    r = httpx.get(
        sso.server.url + "/auth/token",
        params={"service": SERVICE, "scope": scope},
        auth=("evan", secret),
    )
    assert r.status_code == 200, r.text
    assert r.json()["access_token"]
    granted = access_claim(r.json()["access_token"])
    assert granted == {("repository", "team/app"): {"pull", "push"}}


def test_cancel_at_the_provider_shows_a_clear_page(page: Page, sso: Sso) -> None:
    sso.provider.set_user("fay")
    page.goto("/ui/sign-in")
    page.get_by_role("link", name="Sign in with 127.0.0.1").click()
    page.locator("input[name=login]").fill("fay")
    page.locator("input[name=password]").fill("x")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("link", name="[ Cancel ]").click()
    expect(page.get_by_role("heading", name="Sign-in not completed")).to_be_visible()
    expect(page.locator("main")).to_contain_text("cancelled or refused")
    check_a11y(page)
    assert me_status(page) == 401


def test_a_forged_or_replayed_state_is_refused(browser: Browser, sso: Sso) -> None:
    sso.provider.set_user("gus")
    context = new_context(browser, sso.server)
    page = context.new_page()
    callbacks: list[str] = []

    def seen(request: Request) -> None:
        if CALLBACK in request.url:
            callbacks.append(request.url)

    page.on("request", seen)
    provider_sign_in(page, "gus")
    page.wait_for_url("**/ui/repositories**")
    assert len(callbacks) == 1
    # The same callback again (a replay, even in the same browser): the state is spent.
    response = page.goto(callbacks[0])
    assert response is not None
    assert response.status == 400
    expect(page.get_by_role("heading", name="Sign-in link not valid")).to_be_visible()
    context.close()

    # A state this browser never started.
    context = new_context(browser, sso.server)
    page = context.new_page()
    response = page.goto(CALLBACK + "?code=abc&state=made-up")
    assert response is not None
    assert response.status == 400
    expect(page.locator("main")).to_contain_text("not started in this browser")
    assert me_status(page) == 401
    context.close()


def test_a_state_started_in_another_browser_is_refused(browser: Browser, sso: Sso) -> None:
    """Login CSRF: a state is bound to the browser that started the sign-in, so another
    browser (the victim's, even with a sign-in of its own under way) cannot finish it."""
    attacker = new_context(browser, sso.server)
    page = attacker.new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto("/ui/sign-in")
    page.get_by_role("link", name="Sign in with 127.0.0.1").click()
    expect(page.locator("input[name=login]")).to_be_visible()
    authorize = next(url for url in asked if url.startswith(sso.provider.issuer + "/auth?"))
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256
    assert len(query["nonce"][0]) >= 32
    assert "offline_access" in query["scope"][0].split()
    state = query["state"][0]
    attacker.close()

    victim = new_context(browser, sso.server)
    page = victim.new_page()
    page.goto("/ui/sign-in")
    page.get_by_role("link", name="Sign in with 127.0.0.1").click()  # its own cookie
    expect(page.locator("input[name=login]")).to_be_visible()
    response = page.goto(CALLBACK + "?" + urlencode({"code": "stolen", "state": state}))
    assert response is not None
    assert response.status == 400
    expect(page.get_by_role("heading", name="Sign-in link not valid")).to_be_visible()
    assert me_status(page) == 401
    victim.close()


def test_a_name_of_another_account_is_refused_not_merged(page: Page, sso: Sso) -> None:
    add_user(sso.server, "ivy", PASSWORD)
    sso.provider.set_user("ivy-at-provider", username="ivy")
    provider_sign_in(page, "ivy-at-provider")
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    expect(page.locator("main")).to_contain_text("An account named 'ivy' already exists")
    assert me_status(page) == 401
    denied = audit_until(sso.server, "ivy", "login", bool)
    assert [(e.outcome, e.detail["source"]) for e in denied] == [("denied", "oidc")]
    # The local account is untouched: its password still signs in.
    r = httpx.get(sso.server.url + "/auth/token", auth=("ivy", PASSWORD))
    assert r.status_code == 200


def test_a_username_outside_the_grammar_is_refused(page: Page, sso: Sso) -> None:
    sso.provider.set_user("jo", username="jo smith!")
    provider_sign_in(page, "jo")
    expect(page.get_by_role("heading", name="Sign-in refused")).to_be_visible()
    expect(page.locator("main")).to_contain_text("cannot be a hatchway account name")


def me_status(page: Page) -> int:
    return page.request.get("/api/v1/me").status


def create_token(page: Page) -> str:
    """A PAT made by the signed-in person through the API (session cookie + CSRF)."""
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert csrf
    answer = page.request.post(
        "/api/v1/me/tokens",
        data={"name": "ci", "scopes": ["repository:*:pull,push"], "expires": "30d"},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status == 201, answer.text()
    secret = answer.json()["secret"]
    assert isinstance(secret, str)
    return secret


def test_an_expired_sign_in_is_refused(page: Page, sso: Sso) -> None:
    sso.provider.set_user("max")
    page.goto("/ui/sign-in")
    page.get_by_role("link", name="Sign in with 127.0.0.1").click()
    expect(page.locator("input[name=login]")).to_be_visible()
    store = store_of(sso.server)
    try:
        with store.db.write() as conn:  # as if the person took more than ten minutes
            conn.execute(update(oidc_logins).values(expires_at=utcnow() - timedelta(seconds=1)))
    finally:
        store.dispose()
    page.locator("input[name=login]").fill("max")
    page.locator("input[name=password]").fill("x")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Sign-in expired")).to_be_visible()
    assert me_status(page) == 401


def test_an_account_with_a_second_factor_gives_it_after_single_sign_on(
    browser: Browser, sso: Sso
) -> None:
    """The provider's yes is the first factor only: an SSO account that turned on TOTP
    gets the second-factor page next, and no session before the code."""
    sso.provider.set_user("gwen", groups=["devs"])
    context = new_context(browser, sso.server)
    page = context.new_page()
    provider_sign_in(page, "gwen")
    page.wait_for_url("**/ui/repositories**")
    page.goto("/ui/account/twofactor")
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.get_by_label("Secret key").input_value()
    page.get_by_label("Code from the app").fill(code_at(secret))
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    context.close()

    context = new_context(browser, sso.server)
    page = context.new_page()
    provider_sign_in(page, "gwen")
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    assert "hatchway_session" not in {c["name"] for c in context.cookies()}
    assert page.request.get("/api/v1/me").status == 401
    page.get_by_label("Code").fill(code_at(secret, 1))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/ui/repositories**")
    found = me(page)
    assert found["name"] == "gwen"
    assert found["backend"] == "oidc"
    context.close()
