"""A user the provider disables loses hatchway's credentials at the next re-check: the
account's PATs and UI sessions stop once the last check is 15 minutes old and the
provider refuses the kept refresh token (``invalid_grant``). The test moves the last-check
time back in the database instead of waiting. In between, nothing asks the provider."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from hatchway.auth.identity.oidc import token_key
from hatchway.metadata.records import utcnow
from hatchway.metadata.tables import accounts, external_identities, oidc_tokens
from tests.browser.conftest import new_context
from tests.oidc.conftest import ACCESS, Sso, audit_until, provider_sign_in, start_sso, store_of
from tests.oidc.test_sign_in import create_token
from tests.support.authkit import SERVICE, access_claim
from tests.support.oidc_provider import CLIENT_SECRET
from tests.support.server import Server

SCOPE = "repository:team/app:pull,push"


def grant(server: Server, name: str, secret: str) -> httpx.Response:
    return httpx.get(
        server.url + "/auth/token",
        params={"service": SERVICE, "scope": SCOPE},
        auth=(name, secret),
        timeout=30,
    )


def age_last_check(server: Server, name: str, minutes: int = 16) -> None:
    """As if the provider was last asked ``minutes`` ago."""
    store = store_of(server)
    try:
        with store.db.write() as conn:
            account_id = conn.execute(
                select(accounts.c.id).where(accounts.c.name == name)
            ).scalar_one()
            conn.execute(
                update(external_identities)
                .where(external_identities.c.account_id == account_id)
                .values(checked_at=utcnow() - timedelta(minutes=minutes))
            )
    finally:
        store.dispose()


def stored_tokens(server: Server, name: str) -> tuple[str | None, str | None] | None:
    store = store_of(server)
    try:
        with store.db.read() as conn:
            row = conn.execute(
                select(oidc_tokens.c.refresh_token, oidc_tokens.c.access_token)
                .join(accounts, accounts.c.id == oidc_tokens.c.account_id)
                .where(accounts.c.name == name)
            ).first()
    finally:
        store.dispose()
    return (row.refresh_token, row.access_token) if row is not None else None


def until_status(server: Server, name: str, secret: str, status: int) -> httpx.Response:
    """The grant, once it answers ``status`` (the server remembers a link for a second)."""
    deadline = time.monotonic() + 10
    while True:
        response = grant(server, name, secret)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def signed_in(browser: Browser, sso: Sso, login: str) -> Page:
    page = new_context(browser, sso.server).new_page()
    provider_sign_in(page, login)
    page.wait_for_url("**/ui/repositories**")
    return page


def test_a_user_disabled_at_the_provider_loses_pats_and_sessions(
    browser: Browser, sso: Sso
) -> None:
    sso.provider.set_user("kim", groups=["devs"])
    page = signed_in(browser, sso, "kim")
    secret = create_token(page)
    assert grant(sso.server, "kim", secret).status_code == 200
    kept = stored_tokens(sso.server, "kim")
    assert kept is not None
    refresh, access = kept
    assert refresh  # offline_access was asked for and granted
    assert access
    assert refresh.startswith("gAAAAA")  # a Fernet token: sealed, not as the provider sent it

    # Never logged nor audited: the provider's tokens and the client secret.
    plain = token_key(CLIENT_SECRET).decrypt(refresh.encode()).decode()
    log = sso.server.log()
    assert plain not in log
    assert CLIENT_SECRET not in log
    trail = " ".join(str(e) for e in audit_until(sso.server, "kim", "login", bool))
    assert plain not in trail
    assert CLIENT_SECRET not in trail

    sso.provider.set_user("kim", groups=["devs"], disabled=True)
    # Not on every request: until the last check is 15 minutes old, nobody asks.
    assert grant(sso.server, "kim", secret).status_code == 200

    age_last_check(sso.server, "kim")
    refused = until_status(sso.server, "kim", secret, 401)
    assert refused.status_code == 401
    # And it stays refused (the link is disabled, not checked again and again).
    assert grant(sso.server, "kim", secret).status_code == 401
    assert stored_tokens(sso.server, "kim") is None  # the provider's tokens are dropped
    # The web session ends too.
    page.goto("/ui/repositories")
    expect(page).to_have_url(re.compile(r".*/ui/sign-in\b.*"))
    events = audit_until(sso.server, "kim", "account.disable", bool)
    assert [e.detail.get("source") for e in events] == ["oidc"]
    page.context.close()

    # Back at the provider: signing in again enables the account and its tokens.
    sso.provider.set_user("kim", groups=["devs"])
    page = signed_in(browser, sso, "kim")
    assert until_status(sso.server, "kim", secret, 200).status_code == 200
    page.context.close()


def test_the_recheck_follows_the_providers_groups(browser: Browser, sso: Sso) -> None:
    sso.provider.set_user("lou", groups=["devs"])
    page = signed_in(browser, sso, "lou")
    secret = create_token(page)
    page.context.close()
    first = grant(sso.server, "lou", secret)
    assert access_claim(first.json()["access_token"]) == {
        ("repository", "team/app"): {"pull", "push"}
    }

    sso.provider.set_user("lou", groups=["qa"])  # moved out of devs at the provider
    age_last_check(sso.server, "lou")
    deadline = time.monotonic() + 10
    while True:
        response = grant(sso.server, "lou", secret)
        assert response.status_code == 200, response.text
        if not access_claim(response.json()["access_token"]) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert access_claim(response.json()["access_token"]) == {}
    store = store_of(sso.server)
    try:
        link = store.external.get("lou")
    finally:
        store.dispose()
    assert link is not None
    assert link.groups == frozenset({"qa"})
    assert utcnow() - link.checked_at < timedelta(minutes=5)  # checked just now


def test_a_provider_down_at_the_recheck_is_a_503_not_a_refusal(
    browser: Browser, tmp_path: Path
) -> None:
    own = start_sso(tmp_path, ACCESS)
    try:
        own.provider.set_user("mia", groups=["devs"])
        page = signed_in(browser, own, "mia")
        secret = create_token(page)
        own.provider.stop()
        # Within the interval nothing asks the provider: all keeps working.
        assert grant(own.server, "mia", secret).status_code == 200
        age_last_check(own.server, "mia")
        unavailable = until_status(own.server, "mia", secret, 503)
        assert unavailable.status_code == 503
        assert unavailable.headers["Retry-After"]
        response = page.goto("/ui/account")
        assert response is not None
        assert response.status == 503
        expect(page.get_by_role("heading", name="Unavailable")).to_be_visible()
        assert page.request.get("/api/v1/me").status == 503
        page.context.close()
    finally:
        own.server.stop()
        own.provider.stop()


def test_without_a_refresh_token_the_recheck_asks_userinfo(
    browser: Browser, tmp_path: Path
) -> None:
    """A provider that grants no refresh token: its access token, kept sealed, is what the
    re-check shows to userinfo; a disabled user is refused there."""
    own = start_sso(tmp_path, ACCESS, refresh_tokens=False)
    try:
        own.provider.set_user("ned", groups=["devs"])
        page = signed_in(browser, own, "ned")
        secret = create_token(page)
        page.context.close()
        kept = stored_tokens(own.server, "ned")
        assert kept is not None
        assert kept[0] is None  # no refresh token was issued
        assert kept[1]
        # Still enabled: userinfo answers, the groups are read again.
        own.provider.set_user("ned", groups=["devs", "qa"])
        age_last_check(own.server, "ned")
        assert until_groups(own.server, "ned", secret, frozenset({"devs", "qa"}))
        assert grant(own.server, "ned", secret).status_code == 200
        # Disabled: userinfo refuses the access token.
        own.provider.set_user("ned", disabled=True)
        age_last_check(own.server, "ned")
        assert until_status(own.server, "ned", secret, 401).status_code == 401
    finally:
        own.server.stop()
        own.provider.stop()


def until_groups(server: Server, name: str, secret: str, groups: frozenset[str]) -> bool:
    """Use the account's PAT until the stored groups are ``groups`` (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert grant(server, name, secret).status_code == 200
        store = store_of(server)
        try:
            link = store.external.get(name)
        finally:
            store.dispose()
        if link is not None and link.groups == groups:
            return True
        time.sleep(0.2)
    return False
