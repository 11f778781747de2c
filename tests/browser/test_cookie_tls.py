"""Behind a TLS-terminating proxy listed in ``http.trustedproxies`` the session cookie is
``Secure`` and ``__Host-`` prefixed; the same header from anyone else changes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.authkit import ADMIN, ADMIN_PASSWORD
from tests.support.server import Server, start_server

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def start(tmp: Path, trusted: list[str]) -> Server:
    config = {
        "version": "0.1",
        "auth": {"token": {}},
        "http": {"trustedproxies": trusted},
    }
    return start_server(
        tmp, config=json.dumps(config), env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start(tmp_path_factory.mktemp("proxied"), ["127.0.0.1/32"])
    yield found
    found.stop()


@pytest.fixture(scope="module")
def untrusting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start(tmp_path_factory.mktemp("direct"), ["192.0.2.0/24"])
    yield found
    found.stop()


def sign_in(server: Server, headers: dict[str, str]) -> httpx.Response:
    # Cookies by hand: an HTTP client keeps no Secure cookie from a plain-HTTP answer.
    with httpx.Client(base_url=server.url, headers=headers) as client:
        page = client.get("/ui/sign-in")
        pre = page.headers["Set-Cookie"]
        found = _CSRF.search(page.text)
        assert found is not None
        client.cookies.clear()
        done = client.post(
            "/ui/sign-in",
            data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf": found.group(1)},
            headers={"Cookie": pre.split(";", 1)[0]},
        )
        assert done.status_code == 303, done.text
        assert ("Secure" in pre) == ("__Host-" in pre)
        return done


def test_secure_cookie_behind_a_trusted_tls_proxy(behind_proxy: Server) -> None:
    done = sign_in(behind_proxy, {"X-Forwarded-Proto": "https"})
    cookie = done.headers["Set-Cookie"]
    assert cookie.startswith("__Host-hatchway_session=hws_")
    assert "; Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


def test_forwarded_proto_from_anyone_else_is_ignored(untrusting: Server) -> None:
    done = sign_in(untrusting, {"X-Forwarded-Proto": "https"})
    cookie = done.headers["Set-Cookie"]
    assert cookie.startswith("hatchway_session=hws_")
    assert "Secure" not in cookie
