"""CSRF refusals (forms and the API), admin pages refused to non-admins, and markup in
what a page shows rendered as text."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import check_a11y, shot, sign_in
from tests.support.server import Server

ADMIN_PAGES = (
    "/ui/admin",
    "/ui/admin/accounts",
    "/ui/admin/accounts/admin/delete",
    "/ui/admin/robots",
    "/ui/admin/groups",
    "/ui/admin/rules",
    "/ui/admin/rules?account=admin&action=pull&repository=a/b",
    "/ui/admin/audit",
)


def csrf_of(page: Page) -> str:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return token


def test_form_posts_without_or_with_a_wrong_csrf_token_are_refused(
    page: Page, context: BrowserContext, user: str
) -> None:
    sign_in(page, user)
    page.goto("/ui/account")
    form = {"name": "sneaky", "scopes": f"repository:{user}/*:pull", "expires": "7d"}
    for extra in ({}, {"csrf": "x" * 43}, {"csrf": ""}):
        r = context.request.post("/ui/account/tokens", form={**form, **extra})
        assert r.status == 403, r.status
        assert "Form expired" in r.text()
    # The pre-sign-in token does not pass for a signed-in session either.
    r = context.request.post("/ui/account/tokens", form={**form, "csrf": csrf_of(page)})
    assert r.status == 201
    page.goto("/ui/account")
    expect(page.get_by_role("row", name="sneaky")).to_have_count(1)


def test_sign_in_form_needs_its_csrf_token(server: Server, user: str) -> None:
    r = httpx.post(
        server.url + "/ui/sign-in", data={"username": user, "password": "x", "csrf": "nope"}
    )
    assert r.status_code == 403
    assert "hatchway_session" not in r.headers.get("Set-Cookie", "")


def test_a_forged_post_from_another_page_is_refused(page: Page, user: str) -> None:
    """A page that posts the form without the token (what a cross-site forger can do)."""
    sign_in(page, user)
    page.goto("/ui/account")
    page.evaluate(
        """() => {
        const f = document.createElement('form');
        f.method = 'post';
        f.action = '/ui/sign-out';
        document.body.appendChild(f);
        f.submit();
    }"""
    )
    expect(page.get_by_role("heading", name="Form expired")).to_be_visible()
    page.goto("/ui/account")
    expect(page.get_by_role("heading", name="My account")).to_be_visible()  # still signed in


def test_api_with_the_session_cookie_needs_the_csrf_header_to_change(page: Page, user: str) -> None:
    sign_in(page, user)
    token = csrf_of(page)
    fetch = """async ([method, path, body, headers]) => {
        const r = await fetch(path, {method, body, headers: {...headers,
            ...(body ? {'Content-Type': 'application/json'} : {})}});
        return [r.status, await r.text()];
    }"""
    status, body = page.evaluate(fetch, ["GET", "/api/v1/me", None, {}])
    assert status == 200, body
    assert f'"name":"{user}"' in body
    new = f'{{"name": "from-js", "scopes": ["repository:{user}/*:pull"], "expires": "1d"}}'
    status, body = page.evaluate(fetch, ["POST", "/api/v1/me/tokens", new, {}])
    assert status == 403, body
    assert '"CSRF"' in body
    status, body = page.evaluate(
        fetch, ["POST", "/api/v1/me/tokens", new, {"X-CSRF-Token": "wrong"}]
    )
    assert status == 403, body
    status, body = page.evaluate(fetch, ["POST", "/api/v1/me/tokens", new, {"X-CSRF-Token": token}])
    assert status == 201, body
    status, body = page.evaluate(
        fetch, ["DELETE", "/api/v1/me/tokens/from-js", None, {"X-CSRF-Token": token}]
    )
    assert status == 204, body


def test_admin_pages_are_refused_to_non_admins(page: Page, server: Server, user: str) -> None:
    sign_in(page, user)
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    for path in ADMIN_PAGES:
        response = page.goto(path)
        assert response is not None
        assert response.status == 403, path
        expect(page.get_by_role("heading", name="Forbidden")).to_be_visible()
    check_a11y(page)
    shot(page, "forbidden")
    r = page.context.request.post(
        "/ui/admin/accounts",
        form={"name": "made-by-user", "password": "x-Pw-12345", "csrf": csrf_of(page)},
    )
    assert r.status == 403
    r = page.context.request.get("/ui/admin/audit/export?format=csv")
    assert r.status == 403
    assert "made-by-user" not in r.text()


def test_markup_typed_into_forms_is_shown_as_text(page: Page, user: str) -> None:
    script = "<script>alert(1)</script>"
    page.goto("/ui/sign-in")
    page.get_by_label("Username").fill(script)
    page.get_by_label("Password").fill("x")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value(script)
    assert page.locator("script:not([src])").count() == 0

    sign_in(page, user)
    page.goto("/ui/account")
    page.get_by_label("Name").fill("ok")
    page.get_by_label("Scopes").fill("repository:<b>bold</b><script>alert(2)</script>:pull")
    page.get_by_role("button", name="Create token").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("<b>bold</b><script>alert(2)</script>")
    assert page.locator("main b, main script").count() == 0
    assert re.search(r"&lt;b&gt;bold&lt;/b&gt;&lt;script&gt;", page.content())
