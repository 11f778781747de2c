"""``hatchway token create|list|revoke --registry HOST`` against a real server, with the
credentials ``hatchway login`` stored (a refresh token in a private DOCKER_CONFIG)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.mgmt.adminkit import call, fresh
from tests.mgmt.conftest import PASSWORD, Checker
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, hatchway_cli
from tests.support.server import HATCHWAY, Server


class Laptop:
    """A developer machine: its own HOME and docker config, the ``hatchway`` CLI."""

    def __init__(self, root: Path, server: Server) -> None:
        self.root = root
        self.server = server
        self.env = {
            **os.environ,
            "HOME": str(root),
            "DOCKER_CONFIG": str(root / "docker"),
        }

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HATCHWAY, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            check=False,
        )

    def login(self, user: str, password: str) -> None:
        done = self.run("login", "-u", user, "--password-stdin", self.server.addr, stdin=password)
        assert done.returncode == 0, done.stderr
        assert "identitytoken" in (self.root / "docker" / "config.json").read_text()

    def token(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("token", *args, "--registry", self.server.addr)


def one_line_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    assert text in lines[0], lines[0]


def test_a_developer_manages_own_tokens_from_a_laptop(
    server: Server, check: Checker, user: str, tmp_path: Path
) -> None:
    laptop = Laptop(tmp_path, server)
    one_line_error(laptop.token("list"), "hatchway login")  # not logged in yet
    laptop.login(user, PASSWORD)

    done = laptop.token("create", "--name", "laptop", "--scope", f"repository:{user}/*:pull")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    secret = lines[-1]
    assert secret.startswith("hw_")
    assert done.stdout.count(secret) == 1
    assert lines[0].startswith("Created token ")
    assert f"(laptop) for {user}: repository:{user}/*:pull; expires " in lines[0]
    check(call(server, "GET", "/me", secret), 200)

    listed = laptop.token("list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "USER", "SCOPES", "EXPIRES", "LAST", "USED", "FROM"]
    assert rows[0].split()[1:3] == ["laptop", user]
    assert secret not in listed.stdout
    # The same listing as the local command.
    local = hatchway_cli(server.data, "token", "list", "--user", user).stdout
    assert local.splitlines()[1].split()[:4] == rows[0].split()[:4]

    one_line_error(
        laptop.token("create", "--name", "bad", "--scope", "repository:x:fly"), "actions"
    )
    one_line_error(
        laptop.token("create", "--name", "laptop", "--scope", "repository:a:pull"), "409"
    )
    one_line_error(laptop.token("revoke", "nothing"), "no token")
    one_line_error(laptop.token("list", "--all"), "--user")
    one_line_error(laptop.token("list", "--user", ADMIN), "admin accounts only")

    # Naming oneself is the same as not naming anyone.
    done = laptop.token(
        "create", "--user", user, "--name", "mine", "--scope", f"repository:{user}/x:pull"
    )
    assert done.returncode == 0, done.stderr
    assert laptop.token("revoke", "mine", "--user", user).returncode == 0

    done = laptop.token("revoke", "laptop")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Revoked token ")
    assert f"(laptop) of {user}." in done.stdout
    check(call(server, "GET", "/me", secret), 401)


def test_an_admin_manages_a_robots_tokens(server: Server, check: Checker, tmp_path: Path) -> None:
    robot, user = fresh("cli-robot"), fresh("cli-user")
    check(call(server, "POST", "/robots", json={"name": robot}), 201)
    check(call(server, "POST", "/accounts", json={"name": user, "password": "u-Pw-123"}), 201)
    laptop = Laptop(tmp_path, server)
    laptop.login(ADMIN, ADMIN_PASSWORD)

    done = laptop.token(
        "create",
        "--user",
        robot,
        "--name",
        "deploy",
        "--scope",
        "repository:team/*:pull",
        "-e",
        "1d",
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip().splitlines()[-1]
    assert secret.startswith("hw_")
    assert f"(deploy) for {robot}:" in done.stdout
    assert laptop.token("revoke", "deploy", "--user", robot).returncode == 0
    listed = laptop.token("list", "--user", robot, "--all")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split()[-1] == "STATUS"
    assert listed.stdout.splitlines()[1].split()[-1] == "revoked"
    one_line_error(
        laptop.token("create", "--user", user, "--name", "x", "--scope", "repository:a:pull"),
        "users make their own",
    )


def test_without_registry_the_local_database_is_used(server: Server) -> None:
    done = hatchway_cli(
        server.data, "token", "create", "-n", "x", "-s", "repository:a:pull", check=False
    )
    assert done.returncode == 2
    assert "--user is required" in done.stderr


@pytest.mark.parametrize("command", [["list"], ["revoke", "x"]])
def test_an_unreachable_registry_is_one_line(tmp_path: Path, command: list[str]) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text('{"auths": {"127.0.0.1:9": {"auth": "dTpw"}}}')
    done = subprocess.run(
        [HATCHWAY, "token", *command, "--registry", "127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path), "DOCKER_CONFIG": str(docker)},
        check=False,
    )
    one_line_error(done, "127.0.0.1:9")
