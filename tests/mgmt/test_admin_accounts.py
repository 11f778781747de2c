"""Admin endpoints: who may call them, and accounts (create, disable, admin, password, delete)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hatchway.http.api.adminroutes import ADMIN_ROUTES
from tests.mgmt.adminkit import ROOT, call, eventually, fresh
from tests.mgmt.conftest import (
    PASSWORD,
    Checker,
    audit_events,
    error_code,
    offline_refresh_token,
    redeem,
    start,
)
from tests.support.authkit import ADMIN, SERVICE, create_pat, get_token
from tests.support.server import Server

BODIES: dict[str, dict[str, Any]] = {
    "/accounts": {"name": "probe-user", "password": "x-Pw-1"},
    "/accounts/{name}": {"admin": True},
    "/accounts/{name}/password": {},
    "/robots": {"name": "probe-robot"},
    "/robots/{name}/tokens": {"name": "t", "scopes": ["repository:a:pull"]},
    "/groups": {"name": "probe-group"},
    "/access/rules": {"rule": {"repository": "a", "action": "pull"}},
    "/access/rules/{id}/position": {"position": 1},
    "/access/check": {"account": "admin", "action": "pull", "repository": "a"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: its tests fail logins on purpose, which must not
    spend the package server's login budget for 127.0.0.1 (20 failures, then 429)."""
    found = start(tmp_path_factory.mktemp("accounts"))
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def check(server: Server) -> Checker:
    return Checker(server)


def _requests(name: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    found = []
    for route in ADMIN_ROUTES:
        path = re.sub(r"\{[a-z_]+\}", name, route.path)
        found.append((route.method, path, BODIES.get(route.path) if route.body else None))
    return found


def test_admin_endpoints_refuse_everyone_else_alike(
    server: Server, check: Checker, user: str
) -> None:
    user_pat = create_pat(server, user, fresh("pat"), [f"repository:{user}/*:*"])
    admin_pat = create_pat(server, ADMIN, fresh("pat"), ["repository:*:*"])
    for method, path, body in _requests(ADMIN):
        # No credentials: 401 with the Basic challenge, body or not.
        r = call(server, method, path, None, json=body)
        check(r, 401)
        assert r.headers["WWW-Authenticate"] == 'Basic realm="hatchway"'
        # A non-admin: 403, the same answer for an account that exists and one that doesn't.
        r = call(server, method, path, (user, PASSWORD), json=body)
        check(r, 403)
        assert error_code(r) == "DENIED"
        other = call(server, method, path.replace(ADMIN, "no-such-account"), user_pat, json=body)
        assert (other.status_code, other.json()) == (403, r.json())
        # An admin's token without registry:admin:* does not carry admin powers.
        r = call(server, method, path, admin_pat, json=body)
        check(r, 403)
        assert "registry:admin:*" in r.json()["errors"][0]["message"]
    # Bad input from a non-admin is still a 403: nothing is read before the check.
    r = call(server, "POST", "/accounts", (user, PASSWORD), content=b"{not json")
    check(r, 403)


def test_admin_token_with_admin_scope_and_session_act_as_admin(
    server: Server, check: Checker
) -> None:
    pat = create_pat(server, ADMIN, fresh("adm"), ["repository:*:*", "registry:admin:*"])
    assert check(call(server, "GET", "/accounts", pat), 200)["accounts"]
    session = offline_refresh_token(server, *ROOT)
    assert check(call(server, "GET", "/accounts", session), 200)["accounts"]
    me = check(call(server, "GET", "/me", session), 200)
    assert me["authentication"]["method"] == "session"


def test_create_users_with_given_and_generated_passwords(server: Server, check: Checker) -> None:
    given, generated = fresh("given"), fresh("gen")
    body = check(
        call(server, "POST", "/accounts", json={"name": given, "password": "g-Pw-12"}), 201
    )
    assert body["password"] is None
    assert body["kind"] == "user"
    assert not body["admin"]
    assert not body["disabled"]
    check(server.client.get("/api/v1/me", auth=(given, "g-Pw-12")), 200)

    body = check(call(server, "POST", "/accounts", json={"name": generated}), 201)
    secret = body["password"]
    assert isinstance(secret, str)
    assert len(secret) >= 20
    check(server.client.get("/api/v1/me", auth=(generated, secret)), 200)
    listed = check(call(server, "GET", "/accounts"), 200)["accounts"]
    assert {given, generated} <= {a["name"] for a in listed}
    assert secret not in str(listed)
    assert check(call(server, "GET", f"/accounts/{generated}"), 200)["name"] == generated

    [event] = audit_events(server, generated, "user.add")
    assert event["detail"]["by"] == ADMIN
    assert event["detail"]["via"] == "api"
    assert event["detail"]["password_generated"] is True
    assert secret not in str(event)

    r = call(server, "POST", "/accounts", json={"name": given, "password": "x"})
    check(r, 409)
    assert error_code(r) == "CONFLICT"
    check(call(server, "GET", "/accounts/nobody-here"), 404)


def _registry_pull(server: Server, token: str, repo: str) -> int:
    r = httpx.get(
        f"{server.url}/v2/{repo}/tags/list",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    return r.status_code


def test_disable_stops_password_token_session_and_issued_registry_tokens(
    server: Server, check: Checker, user: str
) -> None:
    pat = create_pat(server, user, "ci", [f"repository:{user}/*:pull"])
    session = offline_refresh_token(server, user, PASSWORD)
    jwt = get_token(server, [f"repository:{user}/app:pull"], auth=(user, PASSWORD))
    jwt_from_pat = get_token(server, [f"repository:{user}/app:pull"], auth=(user, pat))
    assert _registry_pull(server, jwt, f"{user}/app") == 404  # allowed; no such repository
    assert _registry_pull(server, jwt_from_pat, f"{user}/app") == 404

    body = check(call(server, "PATCH", f"/accounts/{user}", json={"disabled": True}), 200)
    assert body["disabled"]
    assert body["disabled_since"] is not None
    assert audit_events(server, user, "user.disable")

    check(server.client.get("/api/v1/me", auth=(user, PASSWORD)), 401)
    check(call(server, "GET", "/me", pat), 401)
    check(call(server, "GET", "/me", session), 401)
    assert redeem(server, session) == 400
    for auth in ((user, PASSWORD), (user, pat)):
        r = httpx.get(
            f"{server.url}/auth/token",
            params={"service": SERVICE, "scope": f"repository:{user}/app:pull"},
            auth=auth,
            timeout=30,
        )
        assert r.status_code == 401
    # Registry tokens issued before: refused within seconds (password and PAT alike).
    assert eventually(lambda: _registry_pull(server, jwt, f"{user}/app") == 401)
    assert eventually(lambda: _registry_pull(server, jwt_from_pat, f"{user}/app") == 401)

    body = check(call(server, "PATCH", f"/accounts/{user}", json={"disabled": False}), 200)
    assert not body["disabled"]
    assert eventually(
        lambda: server.client.get("/api/v1/me", auth=(user, PASSWORD)).status_code == 200
    )
    check(call(server, "GET", "/me", pat), 200)
    # Sessions ended for good: a disabled account's stolen session must not come back.
    assert redeem(server, session) == 400
    assert audit_events(server, user, "user.enable")


def test_admin_flag_password_reset_and_delete(server: Server, check: Checker, user: str) -> None:
    body = check(call(server, "PATCH", f"/accounts/{user}", json={"admin": True}), 200)
    assert body["admin"]
    assert eventually(
        lambda: server.client.get("/api/v1/me", auth=(user, PASSWORD)).json()["admin"] is True
    )
    check(call(server, "PATCH", f"/accounts/{user}", json={"admin": False}), 200)

    session = offline_refresh_token(server, user, PASSWORD)
    secret = check(call(server, "POST", f"/accounts/{user}/password", json={}), 200)["password"]
    assert isinstance(secret, str)
    assert redeem(server, session) == 400  # sessions end with a password reset
    assert eventually(
        lambda: server.client.get("/api/v1/me", auth=(user, secret)).status_code == 200
    )
    check(server.client.get("/api/v1/me", auth=(user, PASSWORD)), 401)
    given = check(
        call(server, "POST", f"/accounts/{user}/password", json={"password": "new-Pw-123"}), 200
    )
    assert given == {"password": None}

    pat = create_pat(server, user, "gone", [f"repository:{user}/*:pull"])
    session = offline_refresh_token(server, user, "new-Pw-123")
    check(call(server, "DELETE", f"/accounts/{user}"), 204)
    check(call(server, "GET", "/me", pat), 401)
    assert redeem(server, session) == 400
    check(call(server, "GET", f"/accounts/{user}"), 404)
    check(call(server, "DELETE", f"/accounts/{user}"), 404)
    assert audit_events(server, user, "user.del")


def test_rails_never_yourself_never_the_last_admin(server: Server, check: Checker) -> None:
    for method, path, body in (
        ("PATCH", f"/accounts/{ADMIN}", {"disabled": True}),
        ("PATCH", f"/accounts/{ADMIN}", {"admin": False}),
        ("DELETE", f"/accounts/{ADMIN}", None),
    ):
        r = call(server, method, path, json=body)
        check(r, 409)
        assert "your own" in r.json()["errors"][0]["message"]
    robot = fresh("bot")
    check(call(server, "POST", "/robots", json={"name": robot}), 201)
    r = call(server, "POST", f"/accounts/{robot}/password", json={})
    check(r, 409)
    assert error_code(r) == "NOT_APPLICABLE"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/accounts", {"name": "ok1", "password": "p", "extra": 1}, 422),
        ("POST", "/accounts", {"name": 7}, 422),
        ("POST", "/accounts", {"name": "ok2", "admin": "yes"}, 422),
        ("POST", "/accounts", {"name": "bad name"}, 422),
        ("POST", "/accounts", {"name": "-dash"}, 422),
        ("POST", "/accounts", {"name": "x" * 300}, 422),
        ("POST", "/accounts", {"name": "ok3", "password": "x" * 73}, 422),
        ("POST", "/accounts", {"name": "ok4", "password": ""}, 422),
        ("POST", "/accounts", ["not", "an", "object"], 422),
        ("PATCH", f"/accounts/{ADMIN}", {"disabled": 1}, 422),
        ("PATCH", f"/accounts/{ADMIN}", {"nothing": True}, 422),
        ("POST", "/robots", {"name": "a b"}, 422),
        ("POST", "/groups", {"name": "a/b"}, 422),
        ("POST", "/robots/nobody/tokens", {"name": "t"}, 422),
    ],
)
def test_bad_bodies_are_4xx_json(
    server: Server, check: Checker, method: str, path: str, body: Any, status: int
) -> None:
    r = call(server, method, path, json=body)
    check(r, status)
    assert error_code(r) == "INVALID_REQUEST"


def test_malformed_and_huge_bodies(server: Server, check: Checker) -> None:
    r = call(
        server, "POST", "/accounts", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    check(r, 400)
    r = call(server, "POST", "/accounts", content=b"name=x", headers={"Content-Type": "text/plain"})
    check(r, 415)
    huge = b'{"name": "' + b"a" * 70_000 + b'"}'
    r = call(
        server, "POST", "/accounts", content=huge, headers={"Content-Type": "application/json"}
    )
    check(r, 413)
    check(call(server, "GET", "/tokens", params={"all": "maybe"}), 422)
    check(call(server, "GET", "/tokens", params={"nope": "1"}), 422)


def test_the_account_list_pages_by_name_with_a_link(server: Server, check: Checker) -> None:
    """``n`` and ``last`` as /v2/_catalog: every account exactly once, in name order, each
    with its groups whole although the query joins groups; bad sizes are refused."""
    group = fresh("pg")
    check(call(server, "POST", "/groups", json={"name": group}), 201)
    for index in range(5):
        name = fresh(f"page{index}")
        check(call(server, "POST", "/accounts", json={"name": name, "password": "p-Pw-12"}), 201)
        check(call(server, "PUT", f"/groups/{group}/members/{name}"), 204)
    everyone = check(call(server, "GET", "/accounts"), 200)
    assert everyone["next"] is None
    names = [a["name"] for a in everyone["accounts"]]
    assert names == sorted(names)

    seen: list[dict[str, Any]] = []
    url = "/accounts?n=2"
    while url:
        r = call(server, "GET", url)
        body = check(r, 200)
        assert len(body["accounts"]) <= 2
        seen.extend(body["accounts"])
        following = body["next"]
        if following is None:
            assert "Link" not in r.headers
            break
        assert r.headers["Link"] == f'<{following}>; rel="next"'
        url = following.removeprefix("/api/v1")
    assert [a["name"] for a in seen] == names
    assert seen == everyone["accounts"]  # groups whole on every page

    for bad in ("n=0", "n=1001", "n=x", "sort=name", "n=2&n=3"):
        r = call(server, "GET", f"/accounts?{bad}")
        check(r, 422)
        assert error_code(r) == "INVALID_REQUEST"
