"""The built-in token service over raw HTTP: Docker's GET, the OAuth2 POST form,
revocation (RFC 7009), least privilege, brute-force throttling and the JWKS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support.authkit import (
    ADMIN,
    ADMIN_PASSWORD,
    SERVICE,
    access_claim,
    add_user,
    jwt_header,
    jwt_payload,
    start_token_server,
)
from tests.support.server import Server

PASSWORD = "token-Pw-0123"
ALICE = ("alice", PASSWORD)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_token_server(tmp_path_factory.mktemp("token-endpoint"))
    try:
        add_user(server, "alice", PASSWORD)
        add_user(server, "bob", PASSWORD)
        yield server
    finally:
        server.stop()


def get(
    server: Server,
    params: list[tuple[str, str]] | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    return httpx.get(server.url + "/auth/token", params=tuple(params or ()), auth=auth, timeout=30)


def post(server: Server, form: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url + "/auth/token", data=form, timeout=30)


def granted(response: httpx.Response) -> dict[tuple[str, str], set[str]]:
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return access_claim(token)


def password_form(**extra: str) -> dict[str, str]:
    return {
        "grant_type": "password",
        "username": ALICE[0],
        "password": ALICE[1],
        "client_id": "e2e-tests",
        "service": SERVICE,
        **extra,
    }


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    assert body["error_description"], body
    assert response.headers.get("Cache-Control") == "no-store"
    return body


# -- GET (Docker token spec) -------------------------------------------------------------


def test_get_with_basic_issues_a_token(registry: Server) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    r = get(registry, [("service", SERVICE), ("scope", "repository:alice/app:pull")], ALICE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"] == body["access_token"]
    assert isinstance(body["expires_in"], int)
    assert body["expires_in"] >= 60
    issued = datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    assert before <= issued <= datetime.now(UTC)
    assert "refresh_token" not in body
    assert r.headers["Cache-Control"] == "no-store"

    claims = jwt_payload(body["token"])
    assert claims["sub"] == "alice"
    assert claims["aud"] == SERVICE
    assert claims["iss"] == "hatchway"
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert claims["access"] == [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]


def test_offline_token_adds_a_refresh_token(registry: Server) -> None:
    r = get(
        registry,
        [("service", SERVICE), ("offline_token", "true"), ("client_id", "docker")],
        ALICE,
    )
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"].startswith("hwr_")
    # Anonymous requests never get one.
    r = get(registry, [("service", SERVICE), ("offline_token", "true")])
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()


def test_several_scope_params_and_space_separated_scopes(registry: Server) -> None:
    r = get(
        registry,
        [
            ("service", SERVICE),
            ("scope", "repository:alice/a:pull"),
            ("scope", "repository:alice/b:push repository:alice/c:pull,delete"),
            ("scope", "repository:alice/a:push"),  # the same repository again: merged
        ],
        ALICE,
    )
    assert granted(r) == {
        ("repository", "alice/a"): {"pull", "push"},
        ("repository", "alice/b"): {"push"},
        ("repository", "alice/c"): {"pull", "delete"},
    }


def test_least_privilege(registry: Server) -> None:
    r = get(registry, [("scope", "repository:alice/x:pull,push,delete")], ALICE)
    assert granted(r) == {("repository", "alice/x"): {"pull", "push", "delete"}}
    r = get(registry, [("scope", "repository:alice/x:*")], ALICE)
    assert granted(r) == {("repository", "alice/x"): {"pull", "push", "delete"}}

    # Asking for more than allowed is not an error: the token carries what is allowed.
    r = get(
        registry,
        [
            ("scope", "repository:team/app:push"),
            ("scope", "repository:bob/app:pull"),
            ("scope", "repository:alice/y:pull,frobnicate"),
            ("scope", "registry:catalog:*"),
        ],
        ALICE,
    )
    assert granted(r) == {("repository", "alice/y"): {"pull"}}

    # The admin gets everything asked for.
    r = get(
        registry,
        [("scope", "repository:team/app:pull,push,delete"), ("scope", "registry:catalog:*")],
        (ADMIN, ADMIN_PASSWORD),
    )
    assert granted(r) == {
        ("repository", "team/app"): {"pull", "push", "delete"},
        ("registry", "catalog"): {"*"},
    }


def test_anonymous_gets_a_token_with_no_access(registry: Server) -> None:
    r = get(registry, [("service", SERVICE), ("scope", "repository:alice/app:pull")])
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert jwt_payload(token)["sub"] == ""
    assert jwt_payload(token)["access"] == []


@pytest.mark.parametrize(
    "scope",
    [
        "repository:alice/x",
        "repository",
        "repository:Alice/X:pull",
        "repository:alice//x:pull",
        "repository:alice/x:pu$h",
        "Repo!:alice/x:pull",
    ],
)
def test_malformed_scope_is_400(registry: Server, scope: str) -> None:
    r = get(registry, [("service", SERVICE), ("scope", scope)], ALICE)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_scope"
    assert "malformed scope" in body["error_description"]
    assert "malformed scope" in body["errors"][0]["message"]


def test_wrong_service_is_400(registry: Server) -> None:
    for auth in (ALICE, None):
        r = get(registry, [("service", "other-registry")], auth)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_request"
        assert "unknown service" in r.json()["error_description"]


def test_account_not_matching_basic_user_is_400(registry: Server) -> None:
    r = get(registry, [("service", SERVICE), ("account", "bob")], ALICE)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert "account" in r.json()["error_description"]
    r = get(registry, [("service", SERVICE), ("account", "alice")], ALICE)
    assert r.status_code == 200, r.text


def test_get_with_wrong_password_is_401(registry: Server) -> None:
    r = get(registry, [("service", SERVICE)], ("alice", "wrong"))
    assert r.status_code == 401, r.text
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert r.headers["WWW-Authenticate"].startswith("Basic ")


# -- POST (OAuth2 form) ------------------------------------------------------------------


def test_post_password_grant_and_refresh_without_rotation(registry: Server) -> None:
    r = post(
        registry,
        password_form(access_type="offline", scope="repository:alice/app:pull,push"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] >= 60
    assert body["scope"] == "repository:alice/app:pull,push"
    refresh = body["refresh_token"]
    assert refresh.startswith("hwr_")
    assert access_claim(body["access_token"]) == {("repository", "alice/app"): {"pull", "push"}}
    assert r.headers["Cache-Control"] == "no-store"

    for _ in range(2):  # the same refresh token keeps working: it is not rotated
        r = post(
            registry,
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": "e2e-tests",
                "service": SERVICE,
                "scope": "repository:alice/app:pull repository:team/app:push",
            },
        )
        assert r.status_code == 200, r.text
        again = r.json()
        assert "refresh_token" not in again
        assert jwt_payload(again["access_token"])["sub"] == "alice"
        assert access_claim(again["access_token"]) == {("repository", "alice/app"): {"pull"}}
        assert again["scope"] == "repository:alice/app:pull"

    # Without access_type=offline: no refresh token.
    r = post(registry, password_form())
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()


def test_post_without_client_id_is_invalid_request(registry: Server) -> None:
    form = password_form()
    del form["client_id"]
    assert_oauth_error(post(registry, form), 400, "invalid_request")


def test_post_unknown_grant_type(registry: Server) -> None:
    for grant_type in ("client_credentials", "authorization_code", ""):
        r = post(registry, password_form(grant_type=grant_type))
        assert_oauth_error(r, 400, "unsupported_grant_type")


def test_post_wrong_password_is_invalid_grant(registry: Server) -> None:
    r = post(registry, password_form(password="not-it"))
    body = assert_oauth_error(r, 401, "invalid_grant")
    assert "password" in body["error_description"]


def test_post_missing_username_or_password(registry: Server) -> None:
    form = password_form()
    del form["password"]
    assert_oauth_error(post(registry, form), 400, "invalid_request")


def test_revoke_refresh_token(registry: Server) -> None:
    r = post(registry, password_form(access_type="offline"))
    refresh = r.json()["refresh_token"]
    r = httpx.post(registry.url + "/auth/revoke", data={"token": refresh})
    assert r.status_code == 200, r.text
    refreshed = post(
        registry,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": "e2e-tests",
            "service": SERVICE,
        },
    )
    assert_oauth_error(refreshed, 400, "invalid_grant")
    # Revoking it again, or a token nobody issued, is still 200 (RFC 7009).
    for token in (refresh, "hwr_" + "x" * 43, "whatever"):
        r = httpx.post(registry.url + "/auth/revoke", data={"token": token})
        assert r.status_code == 200, (token, r.text)
    r = httpx.post(registry.url + "/auth/revoke", data={})
    assert_oauth_error(r, 400, "invalid_request")


# -- keys --------------------------------------------------------------------------------


def test_jwks_holds_the_signing_key(registry: Server) -> None:
    token = get(registry, [("scope", "repository:alice/app:pull")], ALICE).json()["token"]
    header = jwt_header(token)
    assert header["alg"] == "ES256"
    r = httpx.get(registry.url + "/auth/jwks.json")
    assert r.status_code == 200
    keys = {k["kid"]: k for k in r.json()["keys"]}
    assert header["kid"] in keys
    jwk = keys[header["kid"]]
    assert "d" not in jwk  # public only
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["ES256"],
        audience=SERVICE,
        issuer="hatchway",
    )
    assert claims["sub"] == "alice"


# -- brute force -------------------------------------------------------------------------


@pytest.fixture
def throttled(tmp_path: Path) -> Iterator[Server]:
    """A fresh server: a fresh database of login counts."""
    server = start_token_server(tmp_path)
    try:
        add_user(server, "victim", PASSWORD)
        add_user(server, "bystander", PASSWORD)
        yield server
    finally:
        server.stop()


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    value = int(response.headers["Retry-After"])
    assert value >= 1
    return value


def test_brute_force_is_throttled_per_account_then_per_address(throttled: Server) -> None:
    server = throttled
    wrong = ("victim", "guess")
    # 5 failures per account and address (ratelimit.PAIR) are answered 401 ...
    for attempt in range(5):
        r = get(server, [("service", SERVICE)], wrong)
        assert r.status_code == 401, (attempt, r.text)
    # ... then the account must wait, with the right password too.
    r = get(server, [("service", SERVICE)], wrong)
    assert retry_after(r) == 1
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    r = get(server, [("service", SERVICE)], ("victim", PASSWORD))
    retry_after(r)
    r = post(server, password_form(username="victim", password=PASSWORD))
    retry_after(r)
    assert r.json()["error"] == "too_many_requests"

    # Another account from the same address still signs in.
    r = get(server, [("service", SERVICE)], ("bystander", PASSWORD))
    assert r.status_code == 200, r.text

    # The wait doubles with each further failure.
    time.sleep(1.1)
    r = get(server, [("service", SERVICE)], wrong)
    assert r.status_code == 401, r.text
    assert retry_after(get(server, [("service", SERVICE)], wrong)) == 2

    # The address counts every failure (6 so far); at 20 (address_threshold) it waits too.
    answered = []
    for n in range(30):
        r = get(server, [("service", SERVICE)], (f"ghost{n}", "guess"))
        answered.append(r.status_code)
        if r.status_code == 429:
            break
    assert answered == [401] * 14 + [429], answered
    r = get(server, [("service", SERVICE)], ("bystander", PASSWORD))
    retry_after(r)
