"""``hatchway login --sso`` as a subprocess against a real ``hatchway serve``: approved
(here over plain HTTP by a signed-in person; tests/browser/test_device_login.py does it in
Chromium) it stores the refresh token as a password login does, in config.json or through
a credential helper; denied, timed out or refused it exits 1 with one line."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.device.support import Person, Running, new_address, start_device_server
from tests.support.authkit import add_user
from tests.support.logins import Home, make_home, run_hatchway
from tests.support.server import Server, start_server

PASSWORD = "device-cli-Pw-0123"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start_device_server(tmp_path_factory.mktemp("device-cli"), interval=1)
    add_user(found, "carol", PASSWORD)
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path)


def test_approved_login_is_stored_like_a_password_login(server: Server, home: Home) -> None:
    running = Running(home, server.addr)
    assert running.url == f"{server.url}/ui/device?user_code={running.code}"
    assert f"open {server.url}/ui/device and enter it" in running.shown
    person = Person(server, "carol", PASSWORD, new_address())
    try:
        shown = person.enter(running.code)
        assert "hatchway/" in shown.text  # the CLI's user agent, on the approval page
        assert person.decide(running.code).status_code == 200
    finally:
        person.close()
    status, out, err = running.finish()
    assert status == 0, running.shown + err
    assert out == "Login Succeeded\n"
    assert "WARNING! Your credentials are stored unencrypted" in err
    entry = home.config()["auths"][server.addr]
    # docker's shape after a token login: the username alone, the refresh token beside it.
    assert entry["auth"] == base64.b64encode(b"carol:").decode()
    assert entry["identitytoken"].startswith("hwr_")
    assert set(entry) == {"auth", "identitytoken"}
    # hatchway's own commands use it (the management API takes the refresh token).
    listed = run_hatchway(home, "token", "list", "--registry", server.addr)
    assert listed.returncode == 0, listed.stderr


def test_credential_helper_gets_the_identity_token(server: Server, home: Home) -> None:
    home.install_helper()
    home.write_config({"credsStore": "testhelper"})
    running = Running(home, server.addr)
    person = Person(server, "carol", PASSWORD, new_address())
    try:
        person.decide(running.code)
    finally:
        person.close()
    status, _, err = running.finish()
    assert status == 0, err
    stored = home.helper_db()[server.addr]
    assert stored["Username"] == "<token>"
    assert stored["Secret"].startswith("hwr_")
    assert home.config()["auths"][server.addr] == {}


def test_denied(server: Server, home: Home) -> None:
    running = Running(home, server.addr)
    person = Person(server, "carol", PASSWORD, new_address())
    try:
        person.decide(running.code, approve=False)
    finally:
        person.close()
    status, out, err = running.finish()
    assert (status, out, err) == (1, "", "Error: the sign-in was denied in the browser\n")
    assert not home.config_file.exists()


def test_times_out(tmp_path: Path, home: Home) -> None:
    server = start_device_server(tmp_path, interval=1, expiration="3s")
    try:
        running = Running(home, server.addr)
        status, out, err = running.finish()
    finally:
        server.stop()
    assert status == 1
    assert out == ""
    assert err == (
        "Error: timed out: the sign-in was not approved within 1 minute; "
        "run `hatchway login --sso` again\n"
    )
    assert not home.config_file.exists()


def test_registry_without_device_login(tmp_path: Path, home: Home) -> None:
    (tmp_path / "open").mkdir()
    (tmp_path / "off").mkdir()
    open_server = start_server(tmp_path / "open")  # no auth: no token service at all
    disabled = start_device_server(tmp_path / "off", enabled=False)
    try:
        for addr in (open_server.addr, disabled.addr):
            done = run_hatchway(home, "login", "--sso", addr)
            assert done.returncode == 1
            assert done.stdout == ""
            assert done.stderr == (
                f"Error: {addr} does not offer device login (--sso); "
                "log in with a username and password or an access token\n"
            )
    finally:
        open_server.stop()
        disabled.stop()


def test_sso_takes_no_password(server: Server, home: Home) -> None:
    done = run_hatchway(home, "login", "--sso", "-u", "carol", "--password-stdin", server.addr)
    assert done.returncode == 1
    assert done.stderr == "Error: --sso signs in through the browser: drop --username/--password\n"
