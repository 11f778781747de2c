"""Access rules change under a running ``hatchway serve`` (two workers), and the audit
trail shows what happened.

One story, in order: a user without rights; ``hatchway access rule add`` grants them
within a couple of seconds; a config edit plus SIGHUP takes effect; a broken edit plus
SIGHUP is refused (the log says why) and the rules in force stay; ``hatchway audit
--json`` lists the logins, grants, pushes, pulls and refusals.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.images import make_image
from tests.support.oci import push_image
from tests.support.server import HATCHWAY, Server, start_server

pytestmark = pytest.mark.e2e

BOB_PASSWORD = "bob-Live-Rules-7"


def config(repository: str, actions: list[str]) -> str:
    doc = {
        "version": "0.1",
        "auth": {"token": {}},
        "storage": {"delete": {"enabled": True}},
        "access": [
            {"name": "bob", "repository": "bob/*", "action": ["pull", "push"]},
            {"name": "bob", "repository": repository, "action": actions},
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def cli(server: Server, *args: str, stdin: str | None = None) -> str:
    cmd = [HATCHWAY, *args, "--data", str(server.data)]
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (cmd, done.stdout, done.stderr)
    return done.stdout


def token(server: Server, scope: str, password: str = BOB_PASSWORD) -> httpx.Response:
    return server.client.get(
        "/auth/token", params={"service": "hatchway", "scope": scope}, auth=("bob", password)
    )


def granted(server: Server, scope: str) -> set[str]:
    """The actions bob's new token carries for ``scope``."""
    response = token(server, scope)
    assert response.status_code == 200, response.text
    payload = response.json()["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {a for entry in claims["access"] for a in entry["actions"]}


def settles(check: Callable[[], bool], within: float) -> float:
    """Seconds until ``check`` held for 4 requests in a row (both workers have seen it)."""
    start = time.monotonic()
    streak = 0
    while time.monotonic() - start < within + 5:
        streak = streak + 1 if check() else 0
        if streak == 4:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not in force after {within + 5:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("live-rules")
    srv = start_server(
        tmp,
        workers=2,
        config=config("aaaa/*", ["pull"]),
        env={"HATCHWAY_ADMIN_PASSWORD": "admin-Live-Rules-1"},
    )
    try:
        cli(srv, "user", "add", "bob", "--password-stdin", stdin=BOB_PASSWORD + "\n")
        yield srv
    finally:
        srv.stop()


def config_path(server: Server) -> Path:
    return server.log_path.with_name(f"config-{server.addr.rsplit(':', 1)[1]}.yml")


def test_rules_change_live_and_are_audited(server: Server) -> None:
    team = "repository:team/app:pull,push"
    assert granted(server, team) == set()

    out = cli(
        server, "access", "rule", "add", '{name: bob, repository: "team/*", action: [pull, push]}'
    )
    assert "Added database rule" in out
    assert settles(lambda: granted(server, team) == {"pull", "push"}, within=2) < 3

    # A same-size edit with the old mtime: only SIGHUP can make the servers read it.
    path = config_path(server)
    before = path.stat()
    path.write_text(config("zzzz/*", ["pull"]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    time.sleep(1.5)
    assert granted(server, "repository:zzzz/x:pull") == set()
    os.kill(server.process.pid, signal.SIGHUP)
    settles(lambda: granted(server, "repository:zzzz/x:pull") == {"pull"}, within=2)
    assert granted(server, "repository:aaaa/x:pull") == set()
    assert "SIGHUP: reloading" in server.log()

    path.write_text(config("zzzz/*", ["fly"]))
    os.kill(server.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "was not reloaded" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    refusal = next(line for line in server.log().splitlines() if "was not reloaded" in line)
    assert str(path) in refusal
    assert "action 'fly' is not one of" in refusal
    assert "the rules in force stay" in refusal
    for _ in range(4):  # both workers still run the last good rules
        assert granted(server, "repository:zzzz/x:pull") == {"pull"}
        assert granted(server, team) == {"pull", "push"}

    audited(server)


def bearer(server: Server, scope: str) -> httpx.Client:
    value = token(server, scope).json()["token"]
    headers = {"Authorization": f"Bearer {value}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def audited(server: Server) -> None:
    """Push, pull, a refused push and a failed login show up in ``hatchway audit``."""
    image = make_image("live-rules", (512,))
    with bearer(server, "repository:team/app:pull,push") as client:
        digest = push_image(client, "team/app", image, "1.0")
        assert client.get("/v2/team/app/manifests/1.0").status_code == 200
        assert client.head("/v2/team/app/manifests/1.0").status_code == 200  # not a pull
    with bearer(server, "repository:zzzz/x:pull,push") as client:
        refused = client.put(
            "/v2/zzzz/x/manifests/1.0",
            content=image.manifest.data,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert refused.status_code == 401
    assert token(server, "repository:team/app:pull", "wrong").status_code == 401
    anonymous = server.client.get("/v2/team/app/manifests/1.0")  # the token dance's first 401
    assert anonymous.status_code == 401

    def events() -> list[dict[str, Any]]:
        out = cli(server, "audit", "--json", "--limit", "1000")
        return [json.loads(line) for line in out.splitlines()]

    deadline = time.monotonic() + 5
    while not any(e["event"] == "login" for e in events()) and time.monotonic() < deadline:
        time.sleep(0.1)
    found = events()
    kinds = {(e["event"], e["outcome"], e["account"]) for e in found}
    assert ("login", "failure", "bob") in kinds
    assert ("token", "success", "bob") in kinds
    assert ("token", "partial", "bob") in kinds  # zzzz: pull granted, push not
    assert ("access.rule.add", "success", None) in kinds
    pushes = [e for e in found if e["event"] == "push" and e["outcome"] == "success"]
    assert [(p["repository"], p["detail"]) for p in pushes] == [
        ("team/app", {"reference": "1.0", "digest": digest})
    ]
    assert pushes[0]["client_addr"] == "127.0.0.1"
    assert pushes[0]["user_agent"].startswith("python-httpx")
    pulls = [e for e in found if e["event"] == "pull"]
    assert [(p["outcome"], p["account"], p["repository"]) for p in pulls] == [
        ("success", "bob", "team/app")
    ]
    (denied,) = [e for e in found if e["outcome"] == "denied"]
    assert (denied["event"], denied["account"], denied["repository"]) == ("push", "bob", "zzzz/x")
    assert denied["scopes_requested"] == ["repository:zzzz/x:pull,push"]
    assert denied["detail"]["reason"] == "insufficient scope"
    times = [e["time"] for e in found]
    assert times == sorted(times, reverse=True)
    assert all(t.endswith("Z") for t in times)


def test_htpasswd_mode_follows_database_rules(tmp_path: Path) -> None:
    """Basic auth on every request: a rule added from the CLI decides the next ones."""
    import bcrypt

    hashed = bcrypt.hashpw(b"alice-pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "htpasswd").write_text(f"alice:{hashed}\n")
    doc = {
        "version": "0.1",
        "auth": {"htpasswd": {"realm": "test", "path": str(tmp_path / "htpasswd")}},
        "access": [{"name": "alice", "repository": "alice/*", "action": "*"}],
    }
    server = start_server(tmp_path, config=yaml.safe_dump(doc))
    try:

        def status() -> int:
            url = "/v2/team/app/tags/list"
            return server.client.get(url, auth=("alice", "alice-pw")).status_code

        assert status() == 403
        cli(server, "access", "rule", "add", '{name: alice, repository: "team/*", action: pull}')
        assert settles(lambda: status() == 404, within=2) < 3  # allowed; nothing there yet
        deadline = time.monotonic() + 5
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            out = cli(server, "audit", "--json", "--outcome", "denied")
            found = [json.loads(line) for line in out.splitlines()]
            time.sleep(0.1)
        # The first 403, and any while the rule was on its way.
        assert {(e["event"], e["account"], e["repository"]) for e in found} == {
            ("pull", "alice", "team/app")
        }
    finally:
        server.stop()
