"""``GET /api/v1/me`` and ``PUT /api/v1/me/password``, and how the API authenticates."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.mgmt.conftest import (
    API,
    HTPASSWD_USER,
    PASSWORD,
    Checker,
    audit_events,
    bearer,
    error_code,
    offline_refresh_token,
    redeem,
    robot,
)
from tests.support.authkit import HTPASSWD, create_pat
from tests.support.server import Server


def test_me_with_password(server: Server, check: Checker, shared: str) -> None:
    user = shared
    body = check(server.client.get(f"{API}/me", auth=(user, PASSWORD)), 200)
    assert body["name"] == user
    assert body["kind"] == "user"
    assert body["admin"] is False
    assert body["groups"] == []
    assert body["created"] is not None
    assert body["backend"] == "local"
    assert body["authentication"] == {"method": "password", "token": None}


def test_me_with_token_as_basic_password_and_as_bearer(
    server: Server, check: Checker, shared: str
) -> None:
    user = shared
    secret = create_pat(server, user, "me-ci", [f"repository:{user}/*:pull,push"], "30d")
    for kwargs in ({"auth": (user, secret)}, {"headers": bearer(secret)}):
        body = check(server.client.get(f"{API}/me", **kwargs), 200)
        assert body["name"] == user
        auth = body["authentication"]
        assert auth["method"] == "token"
        assert auth["token"]["name"] == "me-ci"
        assert auth["token"]["scopes"] == [f"repository:{user}/*:pull,push"]
        assert "secret" not in auth["token"]


def test_robot_me_and_no_password(server: Server, check: Checker) -> None:
    secret = robot(server, "robot-me", ["repository:builds/*:push"])
    body = check(server.client.get(f"{API}/me", headers=bearer(secret)), 200)
    assert (body["name"], body["kind"]) == ("robot-me", "robot")
    assert body["authentication"]["token"]["scopes"] == ["repository:builds/*:push"]
    r = server.client.put(
        f"{API}/me/password",
        headers=bearer(secret),
        json={"old_password": "x", "new_password": "y-Password-1"},
    )
    check(r, 409)
    assert "robot" in r.json()["errors"][0]["message"]


def test_no_or_bad_credentials_are_one_401(server: Server, check: Checker, shared: str) -> None:
    user = shared
    answers = [
        server.client.get(f"{API}/me"),
        server.client.get(f"{API}/me", auth=(user, "wrong-password")),
        server.client.get(f"{API}/me", auth=("nobody-at-all", "wrong-password")),
        server.client.get(f"{API}/me", headers=bearer("hw_" + "A" * 43)),
        server.client.get(f"{API}/me", headers=bearer("not-a-token")),
        server.client.get(f"{API}/me", headers={"Authorization": "Basic !!!"}),
        server.client.get(f"{API}/me", headers={"Authorization": "Digest x"}),
    ]
    for r in answers:
        check(r, 401)
        assert r.headers["WWW-Authenticate"] == 'Basic realm="hatchway"'
        assert error_code(r) == "UNAUTHORIZED"
    # Unknown account and wrong password: the same answer, word for word.
    assert answers[1].json() == answers[2].json()
    assert answers[1].headers["WWW-Authenticate"] == answers[2].headers["WWW-Authenticate"]


def test_revoked_token_is_401(server: Server, check: Checker, shared: str) -> None:
    user = shared
    secret = create_pat(server, user, "gone", [f"repository:{user}/*:pull"])
    check(server.client.get(f"{API}/me", headers=bearer(secret)), 200)
    check(server.client.delete(f"{API}/me/tokens/gone", auth=(user, PASSWORD)), 204)
    check(server.client.get(f"{API}/me", headers=bearer(secret)), 401)
    check(server.client.get(f"{API}/me", auth=(user, secret)), 401)


def test_change_password(server: Server, check: Checker, user: str) -> None:
    refresh = offline_refresh_token(server, user, PASSWORD)
    assert redeem(server, refresh) == 200
    new = "brand-New-pw-42"
    r = server.client.put(
        f"{API}/me/password",
        auth=(user, PASSWORD),
        json={"old_password": PASSWORD, "new_password": new},
    )
    check(r, 204)
    check(server.client.get(f"{API}/me", auth=(user, PASSWORD)), 401)
    check(server.client.get(f"{API}/me", auth=(user, new)), 200)
    # As `hatchway user passwd`: the account's docker sessions (refresh tokens) end.
    assert redeem(server, refresh) == 400
    [event] = audit_events(server, user, "user.passwd")
    assert event["detail"]["via"] == "api"
    assert PASSWORD not in str(event)
    assert new not in str(event)


def test_wrong_old_password_is_403(server: Server, check: Checker, shared: str) -> None:
    user = shared
    r = server.client.put(
        f"{API}/me/password",
        auth=(user, PASSWORD),
        json={"old_password": "not-it", "new_password": "whatever-1"},
    )
    check(r, 403)
    assert error_code(r) == "WRONG_PASSWORD"
    check(server.client.get(f"{API}/me", auth=(user, PASSWORD)), 200)


def test_token_cannot_change_the_password(server: Server, check: Checker, shared: str) -> None:
    user = shared
    secret = create_pat(server, user, "pw-ci", [f"repository:{user}/*:pull,push"])
    body = {"old_password": PASSWORD, "new_password": "stolen-Pw-1"}
    for kwargs in ({"auth": (user, secret)}, {"headers": bearer(secret)}):
        r = server.client.put(f"{API}/me/password", json=body, **kwargs)
        check(r, 403)
        assert error_code(r) == "DENIED"
    check(server.client.get(f"{API}/me", auth=(user, PASSWORD)), 200)
    assert audit_events(server, user, "user.passwd", "denied")


@pytest.mark.parametrize(
    "new",
    ["", "x" * 73, "é" * 40],  # empty; over bcrypt's 72 bytes (as `hatchway user passwd`)
)
def test_password_rules_of_user_passwd(
    server: Server, check: Checker, shared: str, new: str
) -> None:
    user = shared
    r = server.client.put(
        f"{API}/me/password",
        auth=(user, PASSWORD),
        json={"old_password": PASSWORD, "new_password": new},
    )
    check(r, 422)
    assert new not in r.text or not new
    check(server.client.get(f"{API}/me", auth=(user, PASSWORD)), 200)


@pytest.mark.skipif(HTPASSWD is None, reason="htpasswd is not installed")
def test_htpasswd_account(server: Server, check: Checker) -> None:
    auth = HTPASSWD_USER
    body = check(server.client.get(f"{API}/me", auth=auth), 200)
    assert (body["name"], body["backend"], body["created"]) == (auth[0], "htpasswd", None)
    r = server.client.put(
        f"{API}/me/password", auth=auth, json={"old_password": auth[1], "new_password": "n-Pw-2"}
    )
    check(r, 409)
    assert "htpasswd" in r.json()["errors"][0]["message"]
    r = server.client.post(
        f"{API}/me/tokens", auth=auth, json={"name": "t", "scopes": ["repository:x:pull"]}
    )
    check(r, 409)
    assert check(server.client.get(f"{API}/me/tokens", auth=auth), 200) == {"tokens": []}


def test_failed_logins_are_throttled_like_auth_token(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.mgmt.conftest import start
    from tests.support.authkit import add_user

    server = start(tmp_path_factory.mktemp("throttle"))
    try:
        add_user(server, "victim", PASSWORD)
        statuses = [
            server.client.get(f"{API}/me", auth=("victim", f"guess-{i}")).status_code
            for i in range(8)
        ]
        assert statuses[0] == 401
        assert 429 in statuses, statuses
        r = server.client.get(f"{API}/me", auth=("victim", PASSWORD))
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert error_code(r) == "TOO_MANY_REQUESTS"
        # The same limiter as /auth/token: the token endpoint refuses too.
        token = server.client.get("/auth/token", auth=("victim", PASSWORD))
        assert token.status_code == 429
        raw = base64.b64encode(b"victim:x").decode()
        assert (
            server.client.get(f"{API}/me", headers={"Authorization": f"Basic {raw}"}).status_code
            == 429
        )
    finally:
        server.stop()


def test_unauthenticated_answers_are_json(server: Server) -> None:
    r = httpx.get(f"{server.url}{API}/me/tokens")
    assert r.status_code == 401
    assert error_code(r) == "UNAUTHORIZED"
