"""Settled rules: a token never acts beyond itself (revoking, default expiry), and 405 is
answered before credentials are looked at."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.mgmt.adminkit import call, fresh
from tests.mgmt.conftest import API, PASSWORD, Checker, audit_events, error_code, start
from tests.support.authkit import create_pat
from tests.support.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: its tests fail logins on purpose, which must not
    spend the package server's login budget for 127.0.0.1 (20 failures, then 429)."""
    found = start(tmp_path_factory.mktemp("rights"))
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def check(server: Server) -> Checker:
    return Checker(server)


def test_a_token_revokes_only_itself_and_what_it_covers(
    server: Server, check: Checker, user: str
) -> None:
    wide = create_pat(server, user, "wide", [f"repository:{user}/*:pull,push"])
    narrow = create_pat(server, user, "narrow", [f"repository:{user}/app:pull"])
    create_pat(server, user, "other", [f"repository:{user}/app:pull"])
    create_pat(server, user, "catalog", ["registry:catalog:*"])

    r = call(server, "DELETE", "/me/tokens/wide", narrow)
    check(r, 403)
    assert error_code(r) == "DENIED"
    assert "within its own scopes" in r.json()["errors"][0]["message"]
    assert audit_events(server, user, "token.revoke", "denied")
    check(call(server, "DELETE", "/me/tokens/catalog", wide), 403)
    # Covered: the wide one may revoke the narrow ones; any token may revoke itself.
    check(call(server, "DELETE", "/me/tokens/other", wide), 204)
    check(call(server, "DELETE", "/me/tokens/narrow", narrow), 204)
    check(call(server, "GET", "/me", narrow), 401)
    check(call(server, "DELETE", "/me/tokens/nothing", wide), 404)
    # The password may revoke anything of its account.
    check(call(server, "DELETE", "/me/tokens/catalog", (user, PASSWORD)), 204)
    check(call(server, "DELETE", "/me/tokens/wide", (user, PASSWORD)), 204)


def test_default_expiry_is_shortened_to_the_parent_token(
    server: Server, check: Checker, user: str
) -> None:
    parent_name = fresh("parent")
    parent = create_pat(server, user, parent_name, [f"repository:{user}/*:pull"], "2d")
    child = check(
        call(
            server,
            "POST",
            "/me/tokens",
            parent,
            json={"name": fresh("child"), "scopes": [f"repository:{user}/x:pull"]},
        ),
        201,
    )
    own = next(
        t
        for t in check(call(server, "GET", "/me/tokens", parent), 200)["tokens"]
        if t["name"] == parent_name
    )
    assert datetime.fromisoformat(child["expires"]) <= datetime.fromisoformat(own["expires"])
    # Asked for explicitly, a longer life is refused, not shortened.
    r = call(
        server,
        "POST",
        "/me/tokens",
        parent,
        json={"name": fresh("c"), "scopes": [f"repository:{user}/x:pull"], "expires": "3d"},
    )
    check(r, 403)


def test_405_comes_before_401(server: Server, check: Checker) -> None:
    name = fresh("nobody")
    for auth in (None, (name, "wrong-password")):
        for method, path in (
            ("PATCH", "/me/tokens"),
            ("POST", "/accounts/x"),
            ("GET", "/access/check"),
        ):
            r = server.client.request(method, API + path, auth=auth)
            check(r, 405)
            assert error_code(r) == "METHOD_NOT_ALLOWED"
            assert r.headers["Allow"]
            assert "WWW-Authenticate" not in r.headers
    # The wrong password was never checked: no failed login was counted or audited.
    r = server.client.get(f"{API}/me", auth=(name, "wrong-password"))
    check(r, 401)
    [event] = audit_events(server, name, "login", "failure")
    assert event["detail"].get("count", 1) == 1
