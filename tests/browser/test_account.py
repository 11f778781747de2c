"""My account: a token made in the page pushes with skopeo; revoking it stops it; a password
change ends the other sessions; bad input is shown in the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, new_context, shot, sign_in
from tests.support.authkit import HAVE_SKOPEO, Skopeo, stderr
from tests.support.images import make_image, write_oci_layout
from tests.support.server import Server


def create_token(page: Page, name: str, scopes: str | None = None, expires: str = "30 days") -> str:
    """Fill in the new-token form; returns the secret shown once."""
    page.goto("/ui/account")
    page.get_by_label("Name").fill(name)
    if scopes is not None:
        page.get_by_label("Scopes").fill(scopes)
    page.get_by_label("Expires after").select_option(label=expires)
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name=f"Token “{name}” created")).to_be_visible()
    secret = page.get_by_label("New token").input_value()
    assert secret.startswith("hw_")
    return secret


@pytest.mark.e2e
@pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed")
def test_token_made_in_the_page_pushes_with_skopeo_until_revoked(
    page: Page, server: Server, user: str, tmp_path: Path
) -> None:
    sign_in(page, user)
    secret = create_token(page, "laptop")
    check_a11y(page)
    # The copy button puts the secret on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy token").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    # Shown once: a reload (GET) does not show it again.
    page.goto("/ui/account")
    assert secret not in page.content()
    expect(page.get_by_role("row", name="laptop")).to_contain_text(f"repository:{user}/*:pull,push")

    src = tmp_path / "layout"
    write_oci_layout(src, make_image("ui-pat", layer_sizes=(5_000,)), tag="1.0")
    skopeo = Skopeo(tmp_path / "skopeo")
    assert b"Login Succeeded" in skopeo.login(server.addr, user, secret).stdout
    skopeo.push(src, "1.0", f"docker://{server.addr}/{user}/app:1.0")

    page.reload()
    row = page.get_by_role("row", name="laptop")
    expect(row).to_contain_text("from 127.0.0.1")  # last used, and where from
    shot(page, "my-account")
    row.get_by_role("button", name="Revoke token laptop").click()
    expect(page.get_by_role("status")).to_have_text("The token is revoked.")
    expect(page.get_by_role("row", name="laptop")).to_have_count(0)
    again = skopeo.login(server.addr, user, secret, check=False)
    assert again.returncode != 0, stderr(again)


def test_bad_token_input_is_shown_in_the_page(page: Page, user: str) -> None:
    sign_in(page, user)
    page.goto("/ui/account")
    page.get_by_label("Name").fill("ci")
    page.get_by_label("Scopes").fill("repository:app:fly")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("fly")
    check_a11y(page)
    # What was typed stays in the form.
    expect(page.get_by_label("Name")).to_have_value("ci")
    expect(page.get_by_label("Scopes")).to_have_value("repository:app:fly")
    # A name taken by a live token is refused, in the page too.
    page.get_by_label("Scopes").fill(f"repository:{user}/*:pull")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Token “ci” created")).to_be_visible()
    page.get_by_label("Name").fill("ci")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("ci")


def test_password_change_ends_other_sessions(
    browser: Browser, page: Page, server: Server, user: str
) -> None:
    other = new_context(browser, server)
    try:
        second = other.new_page()
        sign_in(second, user)
        sign_in(page, user)
        page.goto("/ui/account#password")
        page.get_by_label("Current password").fill("wrong-one")
        page.get_by_label("New password", exact=True).fill("New-Pw-456")
        page.get_by_label("New password, again").fill("New-Pw-456")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_role("alert")).to_have_text("the old password is incorrect")
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password", exact=True).fill("New-Pw-456")
        page.get_by_label("New password, again").fill("New-Pw-456")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_role("status")).to_contain_text("Your password is changed")
        # This browser stays signed in (a fresh session), the other one is out.
        page.goto("/ui/account")
        expect(page.get_by_role("heading", name="My account")).to_be_visible()
        second.goto("/ui/account")
        expect(second).to_have_url(server.url + "/ui/sign-in?next=/ui/account")
        sign_in(second, user, "New-Pw-456")
    finally:
        other.close()
