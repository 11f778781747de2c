"""Admin endpoints: robots and their tokens, groups and members, everyone's tokens."""

from __future__ import annotations

import httpx

from tests.mgmt.adminkit import call, fresh
from tests.mgmt.conftest import PASSWORD, Checker, audit_events, error_code
from tests.support.authkit import SERVICE, create_pat
from tests.support.server import Server


def test_robots_and_their_tokens(server: Server, check: Checker, user: str) -> None:
    robot = fresh("robot")
    body = check(call(server, "POST", "/robots", json={"name": robot}), 201)
    assert body["kind"] == "robot"
    assert body["password_changed"] is None
    listed = check(call(server, "GET", "/robots"), 200)["accounts"]
    assert robot in {a["name"] for a in listed}
    assert {a["kind"] for a in listed} == {"robot"}

    created = check(
        call(
            server,
            "POST",
            f"/robots/{robot}/tokens",
            json={"name": "deploy", "scopes": ["repository:team/*:pull"], "expires": "7d"},
        ),
        201,
    )
    assert created["account"] == robot
    assert created["secret"].startswith("hw_")
    assert created["active"]
    # It is a registry credential.
    r = httpx.get(
        f"{server.url}/auth/token",
        params={"service": SERVICE, "scope": "repository:team/app:pull"},
        auth=(robot, created["secret"]),
        timeout=30,
    )
    assert r.status_code == 200
    [event] = audit_events(server, robot, "token.create")
    assert created["secret"] not in str(event)

    # Users make their own tokens; robots are not users.
    r = call(
        server,
        "POST",
        f"/robots/{user}/tokens",
        json={"name": "x", "scopes": ["repository:a:pull"]},
    )
    check(r, 409)
    assert error_code(r) == "NOT_APPLICABLE"
    check(call(server, "DELETE", f"/robots/{user}"), 409)
    bad = {"name": "y", "scopes": ["repository:a:fly"]}
    check(call(server, "POST", f"/robots/{robot}/tokens", json=bad), 422)
    check(call(server, "POST", f"/robots/{robot}/tokens", json={**bad, "expires": "soon"}), 422)

    check(call(server, "DELETE", f"/robots/{robot}"), 204)
    r = httpx.get(
        f"{server.url}/auth/token",
        params={"service": SERVICE},
        auth=(robot, created["secret"]),
        timeout=30,
    )
    assert r.status_code == 401
    check(call(server, "DELETE", f"/robots/{robot}"), 404)


def test_groups_and_members(server: Server, check: Checker, shared: str) -> None:
    group = fresh("team")
    body = check(call(server, "POST", "/groups", json={"name": group}), 201)
    assert body == {"name": group, "members": [], "created": body["created"]}
    check(call(server, "POST", "/groups", json={"name": group}), 409)
    for _ in range(2):  # idempotent
        check(call(server, "PUT", f"/groups/{group}/members/{shared}"), 204)
    assert check(call(server, "GET", f"/groups/{group}"), 200)["members"] == [shared]
    groups = check(call(server, "GET", "/groups"), 200)["groups"]
    assert {"name": group, "members": [shared]}.items() <= next(
        g for g in groups if g["name"] == group
    ).items()
    me = check(server.client.get("/api/v1/me", auth=(shared, PASSWORD)), 200)
    assert group in me["groups"]
    assert audit_events(server, shared, "group.member.add")

    check(call(server, "PUT", f"/groups/{group}/members/nobody-at-all"), 404)
    check(call(server, "PUT", f"/groups/no-such-group/members/{shared}"), 404)
    for _ in range(2):
        check(call(server, "DELETE", f"/groups/{group}/members/{shared}"), 204)
    assert check(call(server, "GET", f"/groups/{group}"), 200)["members"] == []
    check(call(server, "DELETE", f"/groups/{group}"), 204)
    check(call(server, "GET", f"/groups/{group}"), 404)
    check(call(server, "DELETE", f"/groups/{group}"), 404)


def test_everyones_tokens(server: Server, check: Checker, user: str) -> None:
    create_pat(server, user, "one", [f"repository:{user}/*:pull"])
    two = create_pat(server, user, "two", [f"repository:{user}/*:pull"])
    everyone = check(call(server, "GET", "/tokens"), 200)["tokens"]
    assert {("one", user), ("two", user)} <= {(t["name"], t["account"]) for t in everyone}
    assert two not in str(everyone)
    mine = check(call(server, "GET", "/tokens", params={"account": user}), 200)["tokens"]
    assert [t["name"] for t in mine] == ["one", "two"]

    check(call(server, "DELETE", f"/tokens/{user}/one"), 204)
    check(call(server, "DELETE", f"/tokens/{user}/{mine[1]['id']}"), 204)  # by id
    check(server.client.get("/api/v1/me", headers={"Authorization": f"Bearer {two}"}), 401)
    assert check(call(server, "GET", "/tokens", params={"account": user}), 200)["tokens"] == []
    every = check(call(server, "GET", "/tokens", params={"account": user, "all": "true"}), 200)
    assert {(t["name"], t["active"]) for t in every["tokens"]} == {("one", False), ("two", False)}
    assert all(t["revoked"] is not None for t in every["tokens"])
    assert audit_events(server, user, "token.revoke")

    check(call(server, "DELETE", f"/tokens/{user}/one"), 404)
    check(call(server, "DELETE", "/tokens/nobody-here/one"), 404)
    check(call(server, "GET", "/tokens", params={"account": "nobody-here"}), 404)
