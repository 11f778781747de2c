"""``GET|POST /api/v1/me/tokens`` and ``DELETE /api/v1/me/tokens/{name}``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.mgmt.conftest import API, PASSWORD, Checker, audit_events, bearer, error_code
from tests.support.authkit import create_pat
from tests.support.server import Server


def create(server: Server, auth: Any, **body: Any) -> Any:
    kwargs = {"headers": bearer(auth)} if isinstance(auth, str) else {"auth": auth}
    return server.client.post(f"{API}/me/tokens", json=body, **kwargs)


def age(value: str) -> float:
    return (datetime.fromisoformat(value) - datetime.now(UTC)).total_seconds()


def test_create_list_revoke(server: Server, check: Checker, user: str) -> None:
    me = (user, PASSWORD)
    assert check(server.client.get(f"{API}/me/tokens", auth=me), 200) == {"tokens": []}
    body = check(
        create(server, me, name="ci", scopes=[f"repository:{user}/*:pull,push"], expires="30d"),
        201,
    )
    assert body["secret"].startswith("hw_")
    assert body["name"] == "ci"
    assert body["scopes"] == [f"repository:{user}/*:pull,push"]
    assert 29 * 86400 < age(body["expires"]) <= 30 * 86400
    assert body["last_used"] is None

    # The secret works, and shows up as last used (with the address).
    check(server.client.get(f"{API}/me", headers=bearer(body["secret"])), 200)
    listed = check(server.client.get(f"{API}/me/tokens", auth=me), 200)["tokens"]
    assert [t["name"] for t in listed] == ["ci"]
    assert listed[0]["last_used"] is not None
    assert listed[0]["last_used_address"] == "127.0.0.1"
    assert body["secret"] not in str(listed)
    assert "hash" not in str(listed)

    [event] = audit_events(server, user, "token.create")
    assert event["detail"]["token_name"] == "ci"
    assert body["secret"] not in str(event)

    check(server.client.delete(f"{API}/me/tokens/ci", auth=me), 204)
    assert check(server.client.get(f"{API}/me/tokens", auth=me), 200) == {"tokens": []}
    assert audit_events(server, user, "token.revoke")
    r = server.client.delete(f"{API}/me/tokens/ci", auth=me)
    check(r, 404)
    assert error_code(r) == "NOT_FOUND"


def test_defaults_and_forms_as_token_create(server: Server, check: Checker, shared: str) -> None:
    user = shared
    me = (user, PASSWORD)
    # scopes as one space-separated string; expiry defaults to the CLI's 90d.
    body = check(
        create(
            server,
            me,
            name="forms-two",
            scopes=f"repository:{user}/a:pull repository:{user}/b:push",
        ),
        201,
    )
    assert body["scopes"] == [f"repository:{user}/a:pull", f"repository:{user}/b:push"]
    assert 89 * 86400 < age(body["expires"]) <= 90 * 86400
    for name, expires in (("forms-forever", None), ("forms-never", "never")):
        body = check(
            create(server, me, name=name, scopes=["registry:catalog:*"], expires=expires), 201
        )
        assert body["expires"] is None


def test_duplicate_name_is_409(server: Server, check: Checker, shared: str) -> None:
    user = shared
    me = (user, PASSWORD)
    check(create(server, me, name="dup", scopes=[f"repository:{user}/x:pull"]), 201)
    r = create(server, me, name="dup", scopes=[f"repository:{user}/y:pull"])
    check(r, 409)
    assert error_code(r) == "CONFLICT"


BAD_BODIES: list[dict[str, Any]] = [
    {"name": "x", "scopes": ["repository:Upper/Case:pull"]},  # fails the repository grammar
    {"name": "x", "scopes": ["repository:a//b:pull"]},
    {"name": "x", "scopes": ["repository:a:fly"]},  # unknown action
    {"name": "x", "scopes": ["volume:a:pull"]},  # unknown resource type
    {"name": "x", "scopes": ["nonsense"]},
    {"name": "x", "scopes": []},
    {"name": "x", "scopes": ""},
    {"name": "1abc", "scopes": ["repository:a:pull"]},  # names start with a letter
    {"name": "a b", "scopes": ["repository:a:pull"]},
    {"name": "x" * 65, "scopes": ["repository:a:pull"]},
    {"name": "x", "scopes": ["repository:a:pull"], "expires": "soon"},
    {"name": "x", "scopes": ["repository:a:pull"], "expires": "0d"},
    {"name": "x", "scopes": ["repository:a:pull"], "expires": 30},
    {"name": "x", "scopes": [1]},
    {"name": 5, "scopes": ["repository:a:pull"]},
    {"name": "x", "scopes": ["repository:a:pull"], "admin": True},  # unknown field
    {"scopes": ["repository:a:pull"]},
]


def test_bad_token_requests_are_422(server: Server, check: Checker, shared: str) -> None:
    me = (shared, PASSWORD)
    for body in BAD_BODIES:
        r = server.client.post(f"{API}/me/tokens", json=body, auth=me)
        check(r, 422)
        assert error_code(r) == "INVALID_REQUEST", body
    names = {
        t["name"] for t in check(server.client.get(f"{API}/me/tokens", auth=me), 200)["tokens"]
    }
    assert "x" not in names


def test_delete_unknown_or_odd_names_is_404(server: Server, check: Checker, shared: str) -> None:
    user = shared
    me = (user, PASSWORD)
    created = check(create(server, me, name="keep", scopes=[f"repository:{user}/x:pull"]), 201)
    for name in ("nothing", "1", "%2e%2e", "x" * 300):
        check(server.client.delete(f"{API}/me/tokens/{name}", auth=me), 404)
    # Another account's token of the same name is not reachable.
    check(server.client.delete(f"{API}/me/tokens/keep", auth=("admin", "x")), 401)
    listed = check(server.client.get(f"{API}/me/tokens", auth=me), 200)["tokens"]
    assert "keep" in [t["name"] for t in listed]
    check(server.client.get(f"{API}/me", headers=bearer(created["secret"])), 200)


def test_token_mints_only_within_itself(server: Server, check: Checker, shared: str) -> None:
    user = shared
    own = create_pat(server, user, "parent", [f"repository:{user}/*:pull,push"], "30d")
    allowed = [
        ([f"repository:{user}/app:pull"], "7d"),
        ([f"repository:{user}/*:push"], "29d"),
        ([f"repository:{user}/team-*:pull,push"], "1d"),
        ([f"repository:{user}/a?c:pull"], "1h"),
    ]
    for i, (scopes, expires) in enumerate(allowed):
        body = check(create(server, own, name=f"child{i}", scopes=scopes, expires=expires), 201)
        assert body["scopes"] == scopes
    refused: list[tuple[list[str], str | None]] = [
        ([f"repository:{user}/*:delete"], "1d"),  # an action it lacks
        ([f"repository:{user}/*:*"], "1d"),
        (["repository:other/*:pull"], "1d"),  # another namespace
        (["repository:*:pull"], "1d"),  # wider glob
        ([f"repository:{user}*:pull"], "1d"),  # alice* also matches alice2/...
        (["registry:catalog:*"], "1d"),
        ([f"repository:{user}/app:pull"], "31d"),  # outlives its parent
        ([f"repository:{user}/app:pull"], None),  # never expires
    ]
    for i, (wanted, lifetime) in enumerate(refused):
        r = create(server, own, name=f"bad{i}", scopes=wanted, expires=lifetime)
        check(r, 403)
        assert error_code(r) == "DENIED", wanted
    assert audit_events(server, user, "token.create", "denied")
    names = {
        t["name"]
        for t in check(server.client.get(f"{API}/me/tokens", headers=bearer(own)), 200)["tokens"]
    }
    assert {"parent", "child0", "child1", "child2", "child3"} <= names
    assert not {n for n in names if n.startswith("bad")}


def test_password_caller_is_not_limited_by_tokens(
    server: Server, check: Checker, shared: str
) -> None:
    user = shared
    # With the password, any scope and expiry the grammar allows (the policy still decides use).
    check(
        create(server, (user, PASSWORD), name="wide", scopes=["repository:*:*"], expires=None), 201
    )
