"""Ill-formed requests to the token service: every one a 4xx in the endpoint's own error
format (OAuth2 JSON for the POST form and revocation, Docker's for GET), never a 500."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.metadata.postgres import fresh_schema
from tests.support.authkit import ADMIN_PASSWORD, SERVICE, access_claim, hatchway_cli, token_config
from tests.support.server import Server, start_server

PASSWORD = "form-Pw-0123"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Token mode on each metadata store: PostgreSQL refuses text SQLite takes (NUL)."""
    with contextlib.ExitStack() as stack:
        doc = json.loads(token_config())
        if request.param == "postgresql":
            doc["database"] = {"dsn": stack.enter_context(fresh_schema())}
        tmp = tmp_path_factory.mktemp(f"token-form-{request.param}")
        config = json.dumps(doc)
        (tmp / "cli.yml").write_text(config)
        server = start_server(tmp, config=config, env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD})
        stack.callback(server.stop)
        hatchway_cli(
            server.data,
            *("user", "add", "alice", "--password-stdin", "--config", str(tmp / "cli.yml")),
            stdin=PASSWORD + "\n",
        )
        yield server


def _fields(**extra: str) -> list[tuple[str, str]]:
    fields = {
        "grant_type": "password",
        "username": "alice",
        "password": PASSWORD,
        "client_id": "form-tests",
        "service": SERVICE,
        **extra,
    }
    return list(fields.items())


def _post(
    server: Server,
    body: bytes | Iterator[bytes],
    content_type: str | None = FORM,
    path: str = "/auth/token",
) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return httpx.post(server.url + path, content=body, headers=headers, timeout=30)


def _oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    assert response.headers.get("Cache-Control") == "no-store"
    return body


def test_a_well_formed_form_in_utf8_is_granted(registry: Server) -> None:
    body = urlencode(_fields(scope="repository:alice/app:pull")).encode()
    for charset in ("", "; charset=utf-8", "; charset=UTF-8", '; charset="utf-8"'):
        r = _post(registry, body, FORM + charset)
        assert r.status_code == 200, (charset, r.text)


@pytest.mark.parametrize(
    "charset", ["ebcdic", "iso-8859-1", "utf-16", "x-unknown", "rot13", "zlib"]
)
def test_another_charset_is_invalid_request(registry: Server, charset: str) -> None:
    """charset=ebcdic was a 500 (aiohttp's form parser raised LookupError)."""
    body = urlencode(_fields()).encode()
    for path in ("/auth/token", "/auth/revoke"):
        r = _post(registry, body, f"{FORM}; charset={charset}", path)
        _oauth_error(r, 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=password&username=al\xffice&password=x&client_id=c",
        b"grant_type=password&username=al%FFice&password=x&client_id=c",
        b"grant_type=password&username=%C3&password=x&client_id=c",
        b"\xef\xbb\xbf\xff\xfe",
    ],
    ids=["raw", "percent", "truncated", "bom-garbage"],
)
def test_bytes_that_are_not_utf8_are_invalid_request(registry: Server, body: bytes) -> None:
    _oauth_error(_post(registry, body), 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type", [None, "multipart/form-data", "application/json", "text/plain"]
)
def test_a_body_that_is_not_a_form_is_invalid_request(
    registry: Server, content_type: str | None
) -> None:
    body = urlencode(_fields()).encode()
    _oauth_error(_post(registry, body, content_type), 400, "invalid_request")


@pytest.mark.parametrize("name", ["grant_type", "username", "password", "client_id", "service"])
def test_a_repeated_parameter_is_invalid_request(registry: Server, name: str) -> None:
    """RFC 6749 3.2: parameters MUST NOT be included more than once."""
    fields = _fields()
    value = dict(fields)[name]
    body = urlencode([*fields, (name, value)]).encode()
    body_ = _oauth_error(_post(registry, body), 400, "invalid_request")
    assert name in body_["error_description"]


def test_repeated_scope_parameters_are_all_granted(registry: Server) -> None:
    """Docker clients send one scope parameter per resource; each counts (only the last
    did before)."""
    fields = [
        *_fields(),
        ("scope", "repository:alice/a:pull"),
        ("scope", "repository:alice/b:push"),
    ]
    r = _post(registry, urlencode(fields).encode())
    assert r.status_code == 200, r.text
    assert access_claim(r.json()["access_token"]) == {
        ("repository", "alice/a"): {"pull"},
        ("repository", "alice/b"): {"push"},
    }


def test_missing_grant_type_is_invalid_request(registry: Server) -> None:
    fields = [(k, v) for k, v in _fields() if k != "grant_type"]
    _oauth_error(_post(registry, urlencode(fields).encode()), 400, "invalid_request")


def test_oversized_bodies_are_413_in_oauth_form(registry: Server) -> None:
    big = urlencode(_fields(padding="x" * 100_000)).encode()
    _oauth_error(_post(registry, big), 413, "invalid_request")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield urlencode(_fields()).encode() + b"&padding="
        for _ in range(40):
            yield b"x" * 65536

    _oauth_error(_post(registry, chunks()), 413, "invalid_request")


def test_too_many_fields_is_invalid_request(registry: Server) -> None:
    fields = [*_fields(), *((f"x{i}", "1") for i in range(200))]
    _oauth_error(_post(registry, urlencode(fields).encode()), 400, "invalid_request")


@pytest.mark.parametrize(
    "scope", ["repository:alice/app:", "repository:alice/app:pull,", "repository:alice/app:,"]
)
def test_a_scope_without_actions_is_invalid_scope(registry: Server, scope: str) -> None:
    """It was granted: a token with an empty access list."""
    r = _post(registry, urlencode(_fields(scope=scope)).encode())
    _oauth_error(r, 400, "invalid_scope")
    r = httpx.get(
        registry.url + "/auth/token",
        params={"service": SERVICE, "scope": scope},
        auth=("alice", PASSWORD),
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_scope"
    assert r.json()["errors"][0]["message"].startswith("malformed scope")


def test_a_scope_naming_a_host_and_port_is_parsed_by_its_last_colon(registry: Server) -> None:
    """``repository:host:5000/foo:pull`` is a name with a port, not a fourth field; no
    repository here has that name, so nothing is granted, and nothing fails."""
    r = httpx.get(
        registry.url + "/auth/token",
        params={"service": SERVICE, "scope": "repository:localhost:5000/alice/app:pull"},
        auth=("alice", PASSWORD),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert access_claim(r.json()["token"]) == {}


@pytest.mark.parametrize("field", ["username", "password", "client_id", "service", "scope"])
def test_a_nul_character_is_invalid_request(registry: Server, field: str) -> None:
    """A NUL in the username (or the client_id of an offline grant) reached PostgreSQL,
    which cannot store it: a 500 from the login query."""
    fields = _fields(access_type="offline", scope="repository:alice/app:pull")
    body = urlencode([(k, v + "\x00" if k == field else v) for k, v in fields]).encode()
    _oauth_error(_post(registry, body), 400, "invalid_request")


def test_a_nul_in_get_parameters_or_basic_credentials_is_400(registry: Server) -> None:
    for params in ({"account": "alice\x00"}, {"client_id": "c\x00"}, {"scope": "\x00"}):
        r = httpx.get(
            registry.url + "/auth/token",
            params={"service": SERVICE, **params},
            auth=("alice", PASSWORD),
            timeout=30,
        )
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"] in ("invalid_request", "invalid_scope"), r.text
    for credentials in (b"al\x00ice:pw", b"alice:pw\x00", b"\x00:\x00"):
        header = "Basic " + base64.b64encode(credentials).decode()
        r = httpx.get(
            registry.url + "/auth/token",
            params={"service": SERVICE},
            headers={"Authorization": header},
            timeout=30,
        )
        assert r.status_code == 400, (credentials, r.text)
        assert r.json()["error"] == "invalid_request"
