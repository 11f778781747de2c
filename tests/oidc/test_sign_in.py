"""Sign in to the web UI with a real OpenID provider, end to end in Chromium."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.oidc.conftest import Sso, provider_sign_in


def test_first_sign_in_makes_a_federated_account(page: Page, sso: Sso) -> None:
    sso.provider.set_user("carol", groups=["devs"])
    provider_sign_in(page, "carol")
    page.wait_for_url("**/ui/repositories**")
    expect(page.locator(".who")).to_have_text("carol")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
