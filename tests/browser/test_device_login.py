"""``hatchway login --sso`` end to end: the CLI runs as a subprocess, its printed page is
opened in Chromium, the person signs in (sent there by the approval page and brought back
with the code), checks the request and approves; the CLI exits 0 with the refresh token
stored as ``identitytoken``, and skopeo and the docker CLI push, pull and inspect with it.
Each page passes axe."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, check_a11y, new_context, shot
from tests.device.support import Running
from tests.support.authkit import Skopeo
from tests.support.images import make_image, write_oci_layout
from tests.support.logins import DOCKER, make_home
from tests.support.server import Server

pytestmark = pytest.mark.e2e


def sign_in_here(page: Page, name: str) -> None:
    """The sign-in page the approval page sent us to; back to it afterwards."""
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/device")


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_sso_login_then_skopeo_and_docker(
    browser: Browser, server: Server, user: str, tmp_path: Path
) -> None:
    home = make_home(tmp_path)
    running = Running(home, server.addr)
    context = new_context(browser, server)
    try:
        page = context.new_page()
        page.goto(running.url)
        sign_in_here(page, user)
        expect(page.get_by_role("heading", name="Sign in a device")).to_be_visible()
        expect(page.get_by_label("Code")).to_have_value(running.code)  # prefilled
        check_a11y(page)
        page.get_by_role("button", name="Continue").click()

        expect(page.get_by_role("heading", name="Approve this sign-in?")).to_be_visible()
        facts = page.locator("dl.facts")
        expect(facts).to_contain_text(running.code)
        expect(facts).to_contain_text("hatchway")  # the CLI's client_id
        expect(facts).to_contain_text("127.0.0.1")  # where it asked from
        expect(facts).to_contain_text("hatchway/")  # its user agent
        check_a11y(page)
        shot(page, "device-approve")
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("heading", name="Device approved")).to_be_visible()
        check_a11y(page)
    finally:
        context.close()

    status, out, err = running.finish()
    assert status == 0, running.shown + err
    assert out == "Login Succeeded\n"
    assert running.code not in server.log()  # the access log hides the page's query
    entry = home.config()["auths"][server.addr]
    assert entry["auth"] == base64.b64encode(f"{user}:".encode()).decode()
    assert entry["identitytoken"].startswith("hwr_")

    # skopeo reads the same config.json: push and pull with the identity token.
    image = make_image("device-login", layer_sizes=(2000,))
    write_oci_layout(tmp_path / "layout", image, tag="1.0")
    skopeo = Skopeo(tmp_path / "skopeo")
    skopeo.auth_file = home.config_file
    skopeo.env["REGISTRY_AUTH_FILE"] = str(home.config_file)
    ref = f"docker://{server.addr}/{user}/app:1.0"
    skopeo.push(tmp_path / "layout", "1.0", ref)
    skopeo.pull(ref, tmp_path / "out", "1.0")
    assert (tmp_path / "out" / "index.json").exists()

    if DOCKER is not None:  # the docker CLI (no engine) with the test's DOCKER_CONFIG
        inspect = subprocess.run(
            [DOCKER, "manifest", "inspect", "--insecure", f"{server.addr}/{user}/app:1.0"],
            capture_output=True,
            text=True,
            env=home.env(DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock"),
            timeout=120,
            check=False,
        )
        assert inspect.returncode == 0, inspect.stderr
        assert json.loads(inspect.stdout) == json.loads(image.manifest.data)


def test_sso_login_denied_in_the_browser(
    browser: Browser, server: Server, user: str, tmp_path: Path
) -> None:
    home = make_home(tmp_path)
    running = Running(home, server.addr)
    context = new_context(browser, server)
    try:
        page = context.new_page()
        page.goto(running.url)
        sign_in_here(page, user)
        page.get_by_role("button", name="Continue").click()
        page.get_by_role("button", name="Deny").click()
        expect(page.get_by_role("heading", name="Device denied")).to_be_visible()
        check_a11y(page)
    finally:
        context.close()
    status, out, err = running.finish()
    assert (status, out, err) == (1, "", "Error: the sign-in was denied in the browser\n")
    assert not home.config_file.exists()


def test_wrong_code_is_shown_in_the_page(browser: Browser, server: Server, user: str) -> None:
    context = new_context(browser, server)
    try:
        page = context.new_page()
        page.goto("/ui/device")
        sign_in_here_plain = page.get_by_label("Username")
        sign_in_here_plain.fill(user)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/ui/device")
        page.get_by_label("Code").fill("bbbb bbbb")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("alert")).to_have_text(
            "No sign-in request has this code. Check it and try again."
        )
        check_a11y(page)
    finally:
        context.close()
