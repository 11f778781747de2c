"""The issue's "done when": a new account, made by an admin in the UI, signs in, makes a
PAT in the UI, and pushes with ``skopeo login`` + ``skopeo copy`` using that PAT."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import check_a11y, new_context, shot, sign_in, sign_in_admin
from tests.browser.test_account import create_token
from tests.support.authkit import HAVE_SKOPEO, Skopeo
from tests.support.images import make_image, write_oci_layout
from tests.support.server import Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed"),
]


def test_admin_makes_an_account_that_pushes_with_a_token_made_in_the_ui(
    browser: Browser, page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in_admin(page)
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
    page.get_by_label("Name").fill("newcomer")
    page.get_by_label("Password", exact=True).fill("Newcomer-Pw-1")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("status")).to_have_text("The account is created.")
    expect(page.get_by_role("cell", name="newcomer", exact=True)).to_be_visible()
    check_a11y(page)
    shot(page, "admin-accounts")

    newcomer = new_context(browser, server)
    try:
        theirs = newcomer.new_page()
        sign_in(theirs, "newcomer", "Newcomer-Pw-1")
        secret = create_token(theirs, "first-push")

        src = tmp_path / "layout"
        write_oci_layout(src, make_image("done-when", layer_sizes=(20_000,)), tag="1.0")
        skopeo = Skopeo(tmp_path / "skopeo")
        assert b"Login Succeeded" in skopeo.login(server.addr, "newcomer", secret).stdout
        ref = f"docker://{server.addr}/newcomer/hello:1.0"
        skopeo.push(src, "1.0", ref)
        assert skopeo.run("inspect", "--tls-verify=false", ref, check=False).returncode == 0
    finally:
        newcomer.close()
