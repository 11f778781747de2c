"""The web UI's session cookie as an /api/v1 credential: reads need nothing more, changes
need the session's CSRF token in X-CSRF-Token, and an ended session is a 401. Every answer
is checked against the OpenAPI document (which lists the cookie scheme)."""

from __future__ import annotations

import re

import httpx

from tests.mgmt.conftest import API, HTPASSWD_USER, PASSWORD, Checker, error_code
from tests.support.server import Server

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def signed_in(server: Server, user: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    """A client holding a UI session cookie, and the session's CSRF token."""
    client = httpx.Client(base_url=server.url, timeout=30)
    page = client.get("/ui/sign-in")
    found = _CSRF.search(page.text)
    assert found is not None
    done = client.post(
        "/ui/sign-in", data={"username": user, "password": password, "csrf": found.group(1)}
    )
    assert done.status_code == 303, done.text
    account = client.get("/ui/account")
    token = _CSRF.search(account.text)
    assert token is not None
    return client, token.group(1)


def test_the_session_cookie_is_an_api_credential(server: Server, check: Checker, user: str) -> None:
    client, csrf = signed_in(server, user)
    try:
        me = check(client.get(f"{API}/me"), 200)
        assert me["name"] == user
        body = {"name": "from-ui", "scopes": [f"repository:{user}/*:pull"], "expires": "1d"}
        refused = check(client.post(f"{API}/me/tokens", json=body), 403)
        assert error_code_of(refused) == "CSRF"
        wrong = client.post(f"{API}/me/tokens", json=body, headers={"X-CSRF-Token": "x" * 43})
        check(wrong, 403)
        assert error_code(wrong) == "CSRF"
        made = check(
            client.post(f"{API}/me/tokens", json=body, headers={"X-CSRF-Token": csrf}), 201
        )
        assert made["secret"].startswith("hw_")
        check(client.delete(f"{API}/me/tokens/from-ui", headers={"X-CSRF-Token": csrf}), 204)
        # Signed out: the cookie is dead for the API too.
        cookie = client.cookies["hatchway_session"]
        client.post("/ui/sign-out", data={"csrf": csrf})
        dead = httpx.get(server.url + f"{API}/me", cookies={"hatchway_session": cookie})
        assert dead.status_code == 401
    finally:
        client.close()


def error_code_of(body: object) -> str:
    assert isinstance(body, dict)
    return str(body["errors"][0]["code"])


def test_htpasswd_accounts_sign_in_to_the_ui(server: Server) -> None:
    # scripts/test installs apache2-utils, whose htpasswd made the file.
    assert server.data.parent.joinpath("htpasswd").exists()
    client, _ = signed_in(server, *HTPASSWD_USER)
    try:
        page = client.get("/ui/account")
        assert page.status_code == 200
        assert "htpasswd file" in page.text
        assert client.head("/ui/account").status_code == 200
    finally:
        client.close()
