"""Admin pages: accounts (disable ends the account's sessions; the rails), robots and
their tokens, groups, access rules with the explain box, the audit trail with filters and
export. axe-core on each."""

from __future__ import annotations

import json

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, new_context, shot, sign_in, sign_in_admin
from tests.support.authkit import ADMIN, ADMIN_PASSWORD
from tests.support.server import Server


def test_disable_ends_sessions_and_the_rails_hold(
    browser: Browser, page: Page, server: Server, user: str
) -> None:
    theirs_context = new_context(browser, server)
    try:
        theirs = theirs_context.new_page()
        sign_in(theirs, user)
        sign_in_admin(page)
        page.goto("/ui/admin/accounts")
        page.get_by_role("button", name=f"Disable {user}").click()
        expect(page.get_by_role("status")).to_contain_text("The account is disabled")
        theirs.goto("/ui/account")
        expect(theirs).to_have_url(server.url + "/ui/sign-in?next=/ui/account")
        theirs.get_by_label("Username").fill(user)
        theirs.get_by_label("Password").fill(PASSWORD)
        theirs.get_by_role("button", name="Sign in").click()
        expect(theirs.get_by_role("alert")).to_have_text("Incorrect username or password.")
        page.get_by_role("button", name=f"Enable {user}").click()
        expect(page.get_by_role("status")).to_have_text("The account is enabled again.")
        sign_in(theirs, user)
        # An admin cannot disable or demote themself.
        page.get_by_role("button", name=f"Disable {ADMIN}", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("your own")
        page.get_by_role("button", name=f"Remove admin from {ADMIN}", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("your own")
        check_a11y(page)
    finally:
        theirs_context.close()


def test_reset_with_a_generated_password_and_delete(page: Page, server: Server, user: str) -> None:
    sign_in_admin(page)
    page.goto("/ui/admin/accounts")
    page.get_by_role("button", name=f"Reset the password of {user}").click()
    generated = page.get_by_label("Generated password").input_value()
    assert len(generated) >= 20
    r = httpx.get(server.url + "/api/v1/me", auth=(user, generated))
    assert r.status_code == 200
    assert httpx.get(server.url + "/api/v1/me", auth=(user, PASSWORD)).status_code == 401
    page.goto("/ui/admin/accounts")
    page.get_by_role("link", name=f"Delete {user}").click()
    expect(page.get_by_role("heading", name=f"Delete account {user}?")).to_be_visible()
    check_a11y(page)
    page.get_by_role("button", name=f"Delete {user}").click()
    expect(page.get_by_role("status")).to_have_text("The account is deleted.")
    expect(page.get_by_role("cell", name=user, exact=True)).to_have_count(0)


def test_robots_and_their_tokens(page: Page, server: Server) -> None:
    sign_in_admin(page)
    page.goto("/ui/admin/robots")
    page.get_by_label("Name").fill("ci-bot")
    page.get_by_role("button", name="Create robot").click()
    expect(page.get_by_role("status")).to_contain_text("The robot is created")
    robot = page.get_by_role("region", name="ci-bot")
    robot.get_by_label("Token name").fill("deploy")
    robot.get_by_role("button", name="Create token for ci-bot").click()
    secret = page.get_by_label("New token").input_value()
    assert secret.startswith("hw_")
    r = httpx.get(
        server.url + "/auth/token", params={"service": "hatchway"}, auth=("ci-bot", secret)
    )
    assert r.status_code == 200
    page.goto("/ui/admin/robots")
    expect(page.get_by_role("row", name="deploy")).to_contain_text("repository:ci-bot/*:pull,push")
    check_a11y(page)
    shot(page, "admin-robots")
    page.get_by_role("button", name="Revoke token deploy of ci-bot").click()
    expect(page.get_by_role("status")).to_have_text("The token is revoked.")
    r = httpx.get(
        server.url + "/auth/token", params={"service": "hatchway"}, auth=("ci-bot", secret)
    )
    assert r.status_code == 401


def test_groups_and_members(page: Page, user: str) -> None:
    sign_in_admin(page)
    page.goto("/ui/admin/groups")
    page.get_by_label("Name").fill("builders")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("status")).to_have_text("The group is created.")
    group = page.get_by_role("region", name="builders")
    group.get_by_label("Account to add to builders").fill(user)
    group.get_by_role("button", name="Add to builders").click()
    expect(page.get_by_role("status")).to_have_text("The member is added.")
    expect(page.get_by_role("region", name="builders")).to_contain_text(user)
    check_a11y(page)
    page.get_by_role("button", name=f"Remove {user} from builders").click()
    expect(page.get_by_role("status")).to_have_text("The member is removed.")
    page.get_by_role("button", name="Delete group builders").click()
    expect(page.get_by_role("status")).to_contain_text("The group is deleted")


def test_rules_and_the_explain_box(page: Page, user: str) -> None:
    sign_in_admin(page)
    page.goto("/ui/admin/rules")
    # With no rules, the defaults: each account owns ${account}/*.
    page.get_by_label("Account", exact=True).fill(user)
    page.get_by_label("Action", exact=True).select_option("push")
    page.locator("#ask-repository").fill(f"{user}/app")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#decision")).to_contain_text("Allowed")
    page.locator("#ask-repository").fill("shared/app")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#decision")).to_contain_text("Denied")
    check_a11y(page)
    # A rule that lets everyone signed in pull shared/*.
    page.locator("#rule-repository").fill("shared/*")
    page.locator("#rule-comment").fill("everyone pulls shared/")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("status")).to_contain_text("The rule is added")
    expect(page.locator("table")).to_contain_text("everyone pulls shared/")
    page.goto(f"/ui/admin/rules?account={user}&action=pull&repository=shared/app")
    expect(page.locator("#decision")).to_contain_text("Allowed")
    expect(page.locator("#decision")).to_contain_text("database rule")
    shot(page, "admin-rules")
    # A bad rule is refused in the page, with what was typed kept.
    page.locator("#rule-repository").fill("Bad Repo//x")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#rule-repository")).to_have_value("Bad Repo//x")
    page.goto("/ui/admin/rules")
    page.get_by_role("button", name="Delete database rule").first.click()
    expect(page.get_by_role("status")).to_have_text("The rule is deleted.")


def test_audit_trail_filters_and_export(page: Page, server: Server, user: str) -> None:
    sign_in(page, user)
    page.get_by_role("button", name="Sign out").click()
    sign_in_admin(page)
    page.goto("/ui/admin/audit")
    page.get_by_label("Account").fill(user)
    page.get_by_label("Event").fill("login")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows.first).to_contain_text("login")
    for row in rows.all():
        expect(row).to_contain_text(user)
    check_a11y(page)
    shot(page, "admin-audit")
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON Lines").click()
    lines = download.value.path().read_text().splitlines()
    assert lines
    assert all(json.loads(line)["account"] == user for line in lines)
    page.get_by_label("Since (UTC)").fill("2999-01-01T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No events match.")).to_be_visible()
    assert ADMIN_PASSWORD not in page.content()


def test_markup_in_names_is_shown_as_text(page: Page) -> None:
    sign_in_admin(page)
    page.goto("/ui/admin/accounts")
    page.get_by_label("Name").fill("<script>alert(4)</script>")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_contain_text("<script>alert(4)</script>")
    assert page.locator("main script").count() == 0
    page.goto("/ui/admin/groups")
    page.get_by_label("Name").fill("<b>grp</b>")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("alert")).to_contain_text("<b>grp</b>")
    assert page.locator("main b").count() == 0
    page.goto("/ui/admin/rules?account=<i>x</i>&action=pull&repository=a/b")
    expect(page.locator("#decision")).to_contain_text("<i>x</i>")
    assert page.locator("main i").count() == 0
