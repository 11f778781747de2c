"""Admin endpoints: access rules (the config file stays their source) and the explain box."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mgmt.adminkit import call, eventually, fresh
from tests.mgmt.conftest import Checker, error_code
from tests.support.authkit import ADMIN_PASSWORD, add_user, hatchway_cli, token_config
from tests.support.server import Server, start_server

CONFIG_RULES = [
    {"name": "anonymous", "repository": "public/*", "action": "pull"},
    {"group": "ops", "type": "registry", "action": "*"},
]


@pytest.fixture(scope="module")
def ruled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose config file has access rules."""
    found = start_server(
        tmp_path_factory.mktemp("ruled"),
        config=token_config(CONFIG_RULES),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        yield found
    finally:
        found.stop()


def _decision(server: Server, account: str, action: str, repository: str | None) -> Any:
    body: dict[str, Any] = {"account": account, "action": action}
    if repository is not None:
        body["repository"] = repository
    r = call(server, "POST", "/access/check", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def config_of(server: Server) -> Path:
    """The config file start_server wrote for ``server``."""
    port = server.url.rsplit(":", 1)[1]
    return server.data.parent / f"config-{port}.yml"


def _cli_check(server: Server, *args: str) -> str:
    config = str(config_of(server))
    result = hatchway_cli(server.data, "access", "check", *args, "--config", config, check=False)
    return result.stdout.strip()


def test_config_rules_are_listed_read_only(ruled: Server) -> None:
    check = Checker(ruled)
    rules = check(call(ruled, "GET", "/access/rules"), 200)["rules"]
    assert [(r["id"], r["source"], r["read_only"], r["label"]) for r in rules] == [
        ("config-1", "config", True, "rule 1"),
        ("config-2", "config", True, "rule 2"),
    ]
    for method, path, body in (
        ("DELETE", "/access/rules/config-1", None),
        ("PUT", "/access/rules/config-2/position", {"position": 1}),
    ):
        r = call(ruled, method, path, json=body)
        check(r, 409)
        assert error_code(r) == "READ_ONLY"
        assert "config file" in r.json()["errors"][0]["message"]

    # Database rules come after the config file's, and are editable.
    added = check(
        call(
            ruled,
            "POST",
            "/access/rules",
            json={
                "rule": {"group": "ci", "repository": "ci/*", "action": "push"},
                "comment": "CI pushes",
            },
        ),
        201,
    )
    assert added["source"] == "database"
    assert added["position"] == 3
    assert added["comment"] == "CI pushes"
    assert added["label"] == f"database rule {added['id']}"
    second = check(
        call(
            ruled,
            "POST",
            "/access/rules",
            json={"rule": {"name": "bob", "repository": "b/*", "action": "pull"}, "position": 1},
        ),
        201,
    )
    assert second["position"] == 3
    listed = check(call(ruled, "GET", "/access/rules"), 200)["rules"]
    assert [r["id"] for r in listed] == ["config-1", "config-2", second["id"], added["id"]]
    moved = check(
        call(ruled, "PUT", f"/access/rules/{second['id']}/position", json={"position": 2}), 200
    )
    assert moved["position"] == 4
    # The CLI lists the same database rules.
    out = hatchway_cli(ruled.data, "access", "rule", "list").stdout
    assert "CI pushes" in out

    # The explain box: the server's rules in force, as `hatchway access check` says it.
    decision = _decision(ruled, "anonymous", "pull", "public/app")
    assert decision["allowed"]
    assert decision["rule"] == "rule 1"
    assert decision["explanation"] == _cli_check(ruled, "anonymous", "pull", "public/app")
    assert eventually(lambda: _decision(ruled, "bob", "pull", "b/x")["allowed"])
    decision = _decision(ruled, "bob", "pull", "b/x")
    assert decision["rule"] == f"database rule {second['id']}"
    assert decision["account"] == {"name": "bob", "known": False, "groups": [], "admin": False}
    assert decision["explanation"] == _cli_check(ruled, "bob", "pull", "b/x")

    for rule in (added, second):
        check(call(ruled, "DELETE", f"/access/rules/{rule['id']}"), 204)
    check(call(ruled, "DELETE", f"/access/rules/{added['id']}"), 404)
    check(call(ruled, "DELETE", "/access/rules/nonsense"), 404)


def test_defaults_are_listed_read_only(server: Server, check: Checker) -> None:
    rules = check(call(server, "GET", "/access/rules"), 200)["rules"]
    assert rules
    assert {r["source"] for r in rules} == {"default"}
    r = call(server, "DELETE", "/access/rules/default-1")
    check(r, 409)
    assert error_code(r) == "READ_ONLY"


@pytest.mark.parametrize(
    "rule",
    [
        {"repository": "x", "action": "fly"},
        {"repository": "x", "action": "pull", "colour": "red"},
        {"name": ["a", 3], "action": "pull"},
        {"repository": "x"},
    ],
)
def test_bad_rules_get_the_cli_message(ruled: Server, rule: dict[str, Any]) -> None:
    check = Checker(ruled)
    r = call(ruled, "POST", "/access/rules", json={"rule": rule})
    check(r, 422)
    assert error_code(r) == "INVALID_RULE"
    cli = hatchway_cli(ruled.data, "access", "rule", "add", json.dumps(rule), check=False)
    assert cli.returncode == 2
    assert r.json()["errors"][0]["message"] in cli.stderr


def test_check_uses_the_accounts_groups(server: Server, check: Checker) -> None:
    name, group = fresh("grouped"), fresh("ops")
    add_user(server, name, "grouped-Pw-1")
    check(call(server, "POST", "/groups", json={"name": group}), 201)
    check(call(server, "PUT", f"/groups/{group}/members/{name}"), 204)
    rule = check(
        call(
            server,
            "POST",
            "/access/rules",
            json={"rule": {"group": group, "repository": "shared/*", "action": "push"}},
        ),
        201,
    )
    try:
        assert eventually(lambda: _decision(server, name, "push", "shared/app")["allowed"])
        decision = _decision(server, name, "push", "shared/app")
        assert decision["account"] == {
            "name": name,
            "known": True,
            "groups": [group],
            "admin": False,
        }
        assert not _decision(server, name, "delete", "shared/app")["allowed"]
        cli = _cli_check(server, name, "push", "shared/app", "--group", group)
        assert decision["explanation"] == cli
        assert _decision(server, "admin", "delete", "any/thing")["rule"] == "admin"
        catalog = _decision(server, name, "catalog", None)
        assert not catalog["allowed"]
    finally:
        check(call(server, "DELETE", f"/access/rules/{rule['id']}"), 204)
    for body in (
        {"account": name, "action": "fly", "repository": "a"},
        {"account": name, "action": "pull", "repository": "UPPER/case"},
        {"account": name, "action": "pull"},
        {"account": name, "action": "catalog", "repository": "a"},
        {"account": "", "action": "pull", "repository": "a"},
        {"account": name, "action": "pull", "repository": "a", "extra": 1},
    ):
        check(call(server, "POST", "/access/check", json=body), 422)
