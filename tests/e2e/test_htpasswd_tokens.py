"""The built-in token service with an htpasswd file beside the local accounts: sessions
(refresh tokens) of htpasswd users end when their line changes, a name in both places is
refused, and ``hatchway session list|revoke`` covers every kind of account."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from hatchway.cli.main import app
from tests.support.authkit import (
    ADMIN_PASSWORD,
    HTPASSWD,
    SERVICE,
    add_user,
    create_pat,
    hatchway_cli,
)
from tests.support.server import Server, start_server

pytestmark = pytest.mark.skipif(
    HTPASSWD is None, reason="htpasswd is not installed (apt-get install apache2-utils)"
)

CAROL = ("carol", "carol-file-Pw1")  # only in the htpasswd file
ALICE_FILE = ("alice", "alice-file-Pw2")  # in the file AND a local account
ALICE_LOCAL = ("alice", "alice-local-Pw3")
BOB = ("bob", "bob-local-Pw4")  # only local


def htpasswd(path: Path, user: str, password: str) -> None:
    assert HTPASSWD is not None
    create = ["-c"] if not path.exists() else []
    subprocess.run(
        [HTPASSWD, *create, "-B", "-C", "4", "-b", str(path), user, password],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    path = tmp_path / "htpasswd"
    htpasswd(path, *CAROL)
    htpasswd(path, *ALICE_FILE)
    config = {
        "version": "0.1",
        "auth": {"token": {}, "htpasswd": {"realm": "test", "path": str(path)}},
    }
    data = tmp_path / "data"
    # The local alice exists before the server reads the file: it warns at start.
    hatchway_cli(data, "user", "add", ALICE_LOCAL[0], "--password-stdin", stdin=ALICE_LOCAL[1])
    server = start_server(
        tmp_path,
        config=json.dumps(config),
        data=data,
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        yield server, path
    finally:
        server.stop()


def login(server: Server, user: tuple[str, str], offline: bool = True) -> httpx.Response:
    form = {
        "grant_type": "password",
        "username": user[0],
        "password": user[1],
        "client_id": "e2e-tests",
        "service": SERVICE,
    }
    if offline:
        form["access_type"] = "offline"
    return httpx.post(server.url + "/auth/token", data=form, timeout=30)


def refresh(server: Server, token: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": "e2e-tests",
        "service": SERVICE,
    }
    return httpx.post(server.url + "/auth/token", data=form, timeout=30)


def session_cli(server: Server, *args: str, code: int = 0) -> Result:
    """``hatchway session ...`` on the server's data directory (in this process: the
    command is the same, without an interpreter start per call)."""
    result = CliRunner().invoke(app, ["session", *args, "--data", str(server.data)])
    assert result.exit_code == code, (args, result.output)
    return result


def session_of(server: Server, user: tuple[str, str]) -> str:
    r = login(server, user)
    assert r.status_code == 200, r.text
    token = r.json()["refresh_token"]
    assert isinstance(token, str)
    return token


def test_htpasswd_session_ends_when_the_password_changes(
    registry: tuple[Server, Path],
) -> None:
    server, path = registry
    carol = session_of(server, CAROL)
    assert refresh(server, carol).status_code == 200
    new_password = "carol-file-Pw-new"
    htpasswd(path, CAROL[0], new_password)
    # Wait until the server has re-read the file (the new password works) ...
    deadline = time.monotonic() + 30
    while login(server, (CAROL[0], new_password), offline=False).status_code != 200:
        assert time.monotonic() < deadline, "the htpasswd file was not re-read"
        time.sleep(0.4)  # each refused try counts against the login throttle (5)
    # ... then the session made with the old line is over, at its next use.
    r = refresh(server, carol)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"
    assert "revoked: the credential it was issued for changed" in server.log()
    # A fresh login makes a session that works.
    assert refresh(server, session_of(server, (CAROL[0], new_password))).status_code == 200


def test_a_name_in_both_the_file_and_the_store_is_refused(
    registry: tuple[Server, Path],
) -> None:
    server, _ = registry
    assert "user 'alice' is also a local account: both are refused" in server.log()
    for user in (ALICE_FILE, ALICE_LOCAL):
        r = login(server, user, offline=False)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "invalid_grant"
    assert "login as 'alice' refused: the name is both a local account" in server.log()
    assert login(server, CAROL, offline=False).status_code == 200


def test_session_list_and_revoke_cover_every_kind_of_account(
    registry: tuple[Server, Path],
) -> None:
    server, _ = registry
    add_user(server, *BOB)
    hatchway_cli(server.data, "user", "add-robot", "builder")
    pat = create_pat(server, "builder", "ci", ["repository:builder/*:pull"])
    sessions = {
        "carol": session_of(server, CAROL),
        "bob": session_of(server, BOB),
        "builder": session_of(server, ("builder", pat)),
    }
    listing = session_cli(server, "list").stdout.splitlines()
    assert listing[0].split()[:4] == ["ID", "USER", "KIND", "CLIENT"]
    rows = {line.split()[1]: line for line in listing[1:]}
    assert set(rows) == {"carol", "bob", "builder"}
    assert " htpasswd " in rows["carol"]
    assert " user " in rows["bob"]
    assert " robot (token " in rows["builder"]
    for line in rows.values():
        assert "e2e-tests" in line
        assert "127.0.0.1" in line
    for secret in sessions.values():
        assert secret not in "\n".join(listing)
    only_bob = session_cli(server, "list", "--user", "bob").stdout
    assert len(only_bob.splitlines()) == 2

    done = session_cli(server, "revoke", "--user", "carol")
    assert done.stdout.strip() == "Revoked 1 session of carol."
    assert refresh(server, sessions["carol"]).status_code == 400
    assert refresh(server, sessions["bob"]).status_code == 200

    bob_id = rows["bob"].split()[0]
    session_cli(server, "revoke", bob_id)
    assert refresh(server, sessions["bob"]).status_code == 400
    again = session_cli(server, "revoke", bob_id, code=1)
    assert f"no live session {bob_id}" in again.stderr

    session_cli(server, "revoke", "--all")
    assert refresh(server, sessions["builder"]).status_code == 400
    assert session_cli(server, "list").stdout.splitlines()[1:] == []
    assert session_cli(server, "list", "--all").stdout.count("revoked") == 3

    for bad in ([], [bob_id, "--all"], ["--user", "bob", "--all"]):
        assert "exactly one of" in session_cli(server, "revoke", *bad, code=2).stderr
