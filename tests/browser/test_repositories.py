"""Repository pages: search, the list with size and last push, the tag table (sorting,
copy pull command), the manifest view (layers, platforms, referrers grouped under their
image), deleting one tag after a confirmation that says what goes, and annotations with
markup shown as text. A repository one may not pull is not found."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, shot, sign_in
from tests.mgmt.repos import image, push, push_index, push_manifest_blob, push_referrer
from tests.support.authkit import add_user
from tests.support.images import Image
from tests.support.oci import manifest_for
from tests.support.server import Server

SCRIPT = "<script>alert(3)</script>"


@pytest.fixture(scope="module")
def owner(server: Server) -> str:
    """An account with repositories: app (1.0; 1.1 = latest), multi (an index with a
    signature on it) and notes (an image whose annotation holds markup)."""
    name = "repoowner"
    add_user(server, name, PASSWORD)
    me = (name, PASSWORD)
    push(server, me, f"{name}/app", image("app-1.0", layer_sizes=(1_000,)), "1.0")
    push(
        server, me, f"{name}/app", image("app-1.1", layer_sizes=(300_000, 20_000)), "1.1", "latest"
    )
    index = push_index(server, me, f"{name}/multi", [image("amd"), image("arm")], "1.0")
    push_referrer(server, me, f"{name}/multi", index, "application/vnd.example.signature")
    base = image("notes")
    push(server, me, f"{name}/notes", base)  # its blobs, by digest
    noted = manifest_for(base.config, base.layers, annotations={"org.example.note": SCRIPT})
    push_manifest_blob(server, me, f"{name}/notes", noted, "1.0")
    assert isinstance(base, Image)
    return name


def test_search_and_list(page: Page, owner: str) -> None:
    sign_in(page, owner)
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(page.get_by_role("row", name=f"{owner}/app")).to_contain_text("2")  # tags
    expect(page.get_by_role("row", name=f"{owner}/app")).to_contain_text("ago")  # last push
    check_a11y(page)
    shot(page, "repositories")
    page.get_by_label("Search repositories").fill("MUL")
    page.get_by_label("Search repositories").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"{owner}/multi")
    page.get_by_label("Search repositories").fill("nothing-like-it")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("has “nothing-like-it” in its name")).to_be_visible()


def test_tag_table_sorts_and_copies_the_pull_command(
    page: Page, server: Server, owner: str
) -> None:
    sign_in(page, owner)
    page.get_by_role("link", name=f"{owner}/app").click()
    expect(page.get_by_role("heading", name=f"{owner}/app")).to_be_visible()
    tags = page.locator("#tags tbody tr td:first-child")
    expect(tags).to_have_text(["1.0", "1.1", "latest"])
    size = page.get_by_role("columnheader", name="Size")
    size.get_by_role("link").click()
    expect(size).to_have_attribute("aria-sort", "ascending")
    expect(tags).to_have_text(["1.0", "1.1", "latest"])
    size.get_by_role("link").click()
    expect(size).to_have_attribute("aria-sort", "descending")
    expect(tags.last).to_have_text("1.0")  # the biggest first (1.1 and latest are one image)
    page.get_by_role("link", name="Pushed by").click()
    expect(page.locator("#tags")).to_contain_text(owner)
    check_a11y(page)
    shot(page, "tags")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy pull command for 1.1").click()
    pulled = page.evaluate("navigator.clipboard.readText()")
    assert pulled == f"docker pull {server.addr}/{owner}/app:1.1"


def test_manifest_view_shows_layers_platforms_and_referrers(page: Page, owner: str) -> None:
    sign_in(page, owner)
    page.goto(f"/ui/repositories/{owner}/app/-/manifests/1.1")
    expect(page.get_by_role("heading", name="Layers")).to_be_visible()
    layers = page.get_by_role("table", name="Config and layers")
    expect(layers.locator("tbody tr")).to_have_count(3)  # the config and two layers
    expect(layers).to_contain_text("config")
    check_a11y(page)
    shot(page, "manifest")
    page.goto(f"/ui/repositories/{owner}/multi")
    page.get_by_role("link", name="1.0", exact=True).click()
    expect(page.get_by_role("heading", name="Platforms")).to_be_visible()
    expect(page.locator("main")).to_contain_text("linux/amd64")
    expect(page.locator("main")).to_contain_text("linux/arm64")
    referrers = page.get_by_role("region", name="Referrers of sha256:")
    expect(referrers).to_contain_text("application/vnd.example.signature")
    expect(referrers.get_by_role("heading", name="This index")).to_be_visible()
    check_a11y(page)
    shot(page, "index")


def test_annotation_with_markup_is_shown_as_text(page: Page, owner: str) -> None:
    sign_in(page, owner)
    page.goto(f"/ui/repositories/{owner}/notes/-/manifests/1.0")
    expect(page.locator("main")).to_contain_text(SCRIPT)
    assert page.locator("main script").count() == 0


def test_delete_one_tag_after_a_confirmation(page: Page, server: Server) -> None:
    name = "deleter"
    add_user(server, name, PASSWORD)
    img = image("to-delete")
    push(server, (name, PASSWORD), f"{name}/gone", img, "old", "keep")
    sign_in(page, name)
    page.goto(f"/ui/repositories/{name}/gone")
    page.get_by_role("link", name="Delete tag old").click()
    expect(page.get_by_role("heading", name="Delete the tag old?")).to_be_visible()
    expect(page.locator("main")).to_contain_text(
        "These tags point at the same manifest and stay: keep"
    )
    check_a11y(page)
    shot(page, "delete-tag")
    page.get_by_role("button", name=f"Delete {name}/gone:old").click()
    expect(page.get_by_role("status")).to_have_text("The tag is deleted.")
    expect(page.locator("#tags tbody tr td:first-child")).to_have_text(["keep"])
    r = server.client.get(f"/v2/{name}/gone/tags/list", auth=(name, PASSWORD))
    assert r.status_code in (200, 401)


def test_a_repository_one_may_not_pull_is_not_found(page: Page, owner: str, user: str) -> None:
    sign_in(page, user)
    expect(page.locator("main")).not_to_contain_text(owner)
    for path in (
        f"/ui/repositories/{owner}/app",
        f"/ui/repositories/{owner}/app/-/manifests/1.0",
        f"/ui/repositories/{owner}/app/-/tags/1.0/delete",
    ):
        response = page.goto(path)
        assert response is not None
        assert response.status == 404, path
    check_a11y(page)
