"""Where ``hatchway login`` takes secrets from (flags, stdin, env, a terminal prompt) and
where it puts them (credsStore/credHelpers routing to a real helper program on PATH)."""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.authkit import ADMIN, ADMIN_PASSWORD, access_log, start_token_server
from tests.support.logins import DOCKER, Home, docker_login, hatchway_login, make_home, run_hatchway
from tests.support.server import HATCHWAY, Server, start_server
from tests.support.tls import self_signed_cert

NON_TTY = "Error: Cannot perform an interactive login from a non TTY device\n"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_token_server(tmp_path_factory.mktemp("login-inputs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = make_home(tmp_path)
    home.install_helper()
    return home


def test_creds_store_helper_gets_the_secret(registry: Server, home: Home) -> None:
    home.write_config({"credsStore": "testhelper", "psFormat": "kept"})
    done = hatchway_login(home, registry.addr, ADMIN, ADMIN_PASSWORD)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Login Succeeded\n"
    assert "WARNING" not in done.stderr  # nothing secret in config.json
    assert home.config() == {
        "credsStore": "testhelper",
        "psFormat": "kept",
        "auths": {registry.addr: {}},
    }
    [(server, entry)] = home.helper_db().items()
    assert server == registry.addr
    assert entry["Username"] == "<token>"  # docker's marker for an identity token
    assert entry["Secret"].startswith("hwr_")
    calls = home.helper_calls()
    assert [c["argv"] for c in calls] == [["store"]]
    assert ADMIN_PASSWORD not in str(calls)

    done = run_hatchway(home, "logout", registry.addr)
    assert done.returncode == 0, done.stderr
    assert home.helper_db() == {}
    assert home.config()["auths"] == {}
    assert [c["argv"] for c in home.helper_calls()][1:] == [["get"], ["erase"]]
    assert [e.status for e in access_log(registry, "/auth/revoke")][-1:] == [200]


def test_cred_helpers_win_over_creds_store(registry: Server, home: Home) -> None:
    home.write_config({"credsStore": "nosuchhelper", "credHelpers": {registry.addr: "testhelper"}})
    assert hatchway_login(home, registry.addr, ADMIN, ADMIN_PASSWORD).returncode == 0
    assert list(home.helper_db()) == [registry.addr]
    assert home.config()["auths"] == {registry.addr: {}}
    # Any other registry goes to credsStore, whose program is missing: a one-line error
    # after the login was verified, and nothing stored anywhere.
    home.write_config({"credsStore": "nosuchhelper"})
    before = home.config_file.read_bytes()
    done = hatchway_login(
        home, f"localhost:{registry.addr.rsplit(':', 1)[1]}", ADMIN, ADMIN_PASSWORD
    )
    assert done.returncode == 1
    assert done.stderr == (
        "Error: saving credentials: docker-credential-nosuchhelper not found in PATH "
        "(credsStore/credHelpers)\n"
    )
    assert home.config_file.read_bytes() == before


def test_helper_error_is_shown_on_one_line(registry: Server, home: Home) -> None:
    home.write_config({"credsStore": "testhelper"})
    done = hatchway_login(
        home, registry.addr, ADMIN, ADMIN_PASSWORD, TESTHELPER_FAIL="keyring is locked\nmore"
    )
    assert done.returncode == 1
    assert done.stderr == (
        "Error: saving credentials: docker-credential-testhelper store: keyring is locked\n"
    )


def test_no_terminal_and_no_secret(registry: Server, home: Home) -> None:
    for args in (["-u", ADMIN], []):
        done = run_hatchway(home, "login", *args, registry.addr)
        assert done.returncode == 1
        assert done.stderr == NON_TTY
    done = run_hatchway(home, "login", "--password-stdin", registry.addr, stdin="pw\n")
    assert done.stderr == "Error: Must provide --username with --password-stdin\n"
    assert not home.config_file.exists()


def test_env_fallback_for_ci(registry: Server, home: Home) -> None:
    done = run_hatchway(
        home,
        "login",
        registry.addr,
        HATCHWAY_USERNAME=ADMIN,
        HATCHWAY_PASSWORD=ADMIN_PASSWORD,
    )
    assert done.returncode == 0, done.stderr
    entry = home.config()["auths"][registry.addr]
    assert entry["auth"] == base64.b64encode(f"{ADMIN}:".encode()).decode()


def test_password_flag_warns(registry: Server, home: Home) -> None:
    done = run_hatchway(home, "login", "-u", ADMIN, "-p", ADMIN_PASSWORD, registry.addr)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(
        "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
    )
    both = run_hatchway(
        home, "login", "-u", ADMIN, "-p", "x", "--password-stdin", registry.addr, stdin="y"
    )
    assert both.returncode == 1
    assert both.stderr.endswith("Error: --password and --password-stdin are mutually exclusive\n")


def test_default_server_is_docker_hub(home: Home) -> None:
    """No network needed: a password entry has no refresh token to revoke."""
    hub = "https://index.docker.io/v1/"
    home.write_config({"auths": {hub: {"auth": "dTpw"}, "other:1": {}}})
    done = run_hatchway(home, "logout")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Removing login credentials for {hub}\n"
    assert home.config()["auths"] == {"other:1": {}}


def _read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, bytes(seen)
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, bytes(seen)
            seen += chunk


def test_terminal_prompts_and_never_echoes(registry: Server, home: Home) -> None:
    master, slave = os.openpty()
    process = subprocess.Popen(
        [HATCHWAY, "login", registry.addr],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=home.env(),
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        _read_until(master, b"Username: ", seen)
        os.write(master, ADMIN.encode() + b"\n")
        _read_until(master, b"Password: ", seen)
        os.write(master, ADMIN_PASSWORD.encode() + b"\n")
        _read_until(master, b"Login Succeeded", seen)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert ADMIN_PASSWORD.encode() not in seen
    assert registry.addr in home.config()["auths"]


def test_tls_registry_needs_trust_or_insecure(tmp_path: Path, home: Home) -> None:
    cert, key = self_signed_cert(tmp_path)
    config = {
        "version": "0.1",
        "http": {"tls": {"certificate": str(cert), "key": str(key)}},
        "auth": {"token": {}},
    }
    server = start_server(
        tmp_path,
        config=json.dumps(config),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
        scheme="https",
    )
    try:
        done = hatchway_login(home, server.addr, ADMIN, ADMIN_PASSWORD)
        assert done.returncode == 1
        assert done.stderr.startswith(f"Error: cannot reach {server.addr}: ")
        assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
        assert done.stderr.endswith("(--insecure skips the check)\n")
        done = hatchway_login(home, server.addr, ADMIN, ADMIN_PASSWORD, "--insecure")
        assert done.returncode == 0, done.stderr
        assert home.config()["auths"][server.addr]["identitytoken"].startswith("hwr_")
        assert run_hatchway(home, "logout", "--insecure", server.addr).returncode == 0
        assert [e.status for e in access_log(server, "/auth/revoke")] == [200]
    finally:
        server.stop()


def test_server_given_as_url_is_filed_by_host(registry: Server, home: Home) -> None:
    """``docker login http://host:port/`` files under ``host:port``; so does hatchway."""
    done = hatchway_login(home, f"http://{registry.addr}/", ADMIN, ADMIN_PASSWORD)
    assert done.returncode == 0, done.stderr
    assert list(home.config()["auths"]) == [registry.addr]
    done = run_hatchway(home, "logout", f"http://{registry.addr}")
    assert done.stdout == f"Removing login credentials for {registry.addr}\n"
    assert home.config()["auths"] == {}


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_helper_config_is_what_docker_writes(registry: Server, tmp_path: Path) -> None:
    ours, theirs = make_home(tmp_path, "ours"), make_home(tmp_path, "theirs")
    for home in (ours, theirs):
        home.install_helper()
        home.write_config({"credsStore": "testhelper"})
    assert hatchway_login(ours, registry.addr, ADMIN, ADMIN_PASSWORD).returncode == 0
    done = docker_login(theirs, registry.addr, ADMIN, ADMIN_PASSWORD)
    assert done.returncode == 0, done.stderr
    assert ours.config_file.read_text() == theirs.config_file.read_text()
    assert [e["Username"] for e in ours.helper_db().values()] == ["<token>"]
    assert [e["Username"] for e in theirs.helper_db().values()] == ["<token>"]
