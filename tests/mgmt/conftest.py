"""A real ``hatchway serve`` (built-in token service plus an htpasswd file) for the
management API tests, its accounts made with the CLI, and a checker that validates every
answer against the server's own OpenAPI document."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.support.authkit import ADMIN_PASSWORD, SERVICE, add_user, create_pat, hatchway_cli
from tests.support.server import Server, start_server

PASSWORD = "user-Pw-0123"
HTPASSWD_USER = ("hermes", "htpasswd-Pw-1")
API = "/api/v1"


def config(tmp: Path) -> str:
    auth: dict[str, Any] = {"token": {}}
    htpasswd = shutil.which("htpasswd")
    if htpasswd is not None:
        path = tmp / "htpasswd"
        subprocess.run(
            [htpasswd, "-B", "-b", "-c", str(path), *HTPASSWD_USER],
            check=True,
            capture_output=True,
        )
        auth["htpasswd"] = {"realm": "hatchway", "path": str(path)}
    doc = {"version": "0.1", "auth": auth, "storage": {"delete": {"enabled": True}}}
    return json.dumps(doc)


def start(tmp: Path) -> Server:
    return start_server(tmp, config=config(tmp), env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD})


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start(tmp_path_factory.mktemp("mgmt"))
    try:
        yield found
    finally:
        found.stop()


_users = iter(range(1_000_000))


@pytest.fixture
def user(server: Server) -> str:
    """A fresh user (password PASSWORD), for tests that change the account or list all of
    its tokens. Each costs a CLI run and a bcrypt hash: most tests share ``shared``."""
    name = f"user{next(_users)}"
    add_user(server, name, PASSWORD)
    return name


@pytest.fixture(scope="package")
def shared(server: Server) -> str:
    """A user the tests share; each names its tokens apart and never changes the password."""
    add_user(server, "shared", PASSWORD)
    return "shared"


def robot(server: Server, name: str, scopes: list[str]) -> str:
    """A robot account and a token for it (the CLI way); returns the token."""
    hatchway_cli(server.data, "user", "add-robot", name)
    return create_pat(server, name, "robot-token", scopes)


class Checker:
    """Validates answers against the live /api/v1/openapi.json (status documented, body fits)."""

    def __init__(self, server: Server) -> None:
        self.doc: dict[str, Any] = server.client.get(f"{API}/openapi.json").json()

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        for template, ops in self.doc["paths"].items():
            # A repository name holds slashes; every other parameter is one segment.
            name = ".+" if template.startswith(f"{API}/repositories/") else "[^/]+"
            pattern = re.sub(r"\\\{name\\\}", name, re.escape(template))
            pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", pattern)
            if re.fullmatch(pattern, path) and method.lower() in ops:
                return dict(ops[method.lower()])
        return None

    def __call__(self, response: httpx.Response, status: int) -> Any:
        """Assert the status, that the document lists it, and that the body fits its schema.

        A method the document does not list must be a 404 or 405 in the error format."""
        request = response.request
        assert response.status_code == status, (response.status_code, response.text)
        op = self.operation(request.method, request.url.path)
        if op is None:
            assert status in (404, 405), f"{request.method} {request.url.path} is undocumented"
            content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        else:
            documented = op["responses"].get(str(status))
            assert documented is not None, f"{status} undocumented: {request.method} {request.url}"
            content = documented.get("content")
        if content is None:
            assert response.content == b""
            return None
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        schema = {**content["application/json"]["schema"], "components": self.doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(body)
        return body


@pytest.fixture(scope="package")
def check(server: Server) -> Checker:
    return Checker(server)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"errors"}, body
    return str(body["errors"][0]["code"])


def basic(user: str, password: str = PASSWORD) -> tuple[str, str]:
    return (user, password)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def offline_refresh_token(server: Server, user: str, password: str) -> str:
    r = server.client.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": user,
            "password": password,
            "client_id": "mgmt-test",
            "access_type": "offline",
            "service": SERVICE,
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["refresh_token"])


def redeem(server: Server, refresh: str) -> int:
    r = server.client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": "mgmt-test",
            "service": SERVICE,
        },
    )
    return r.status_code


def audit_events(
    server: Server, account: str, event: str, outcome: str = "success"
) -> list[dict[str, Any]]:
    """``hatchway audit --json`` for this account, event and outcome, once there is one (the
    server's audit sink writes in the background)."""
    found: list[dict[str, Any]] = []
    for _ in range(100):
        out = hatchway_cli(
            server.data, "audit", "--account", account, "--event", event, "--json"
        ).stdout
        found = [json.loads(line) for line in out.splitlines() if line.strip()]
        found = [e for e in found if e["outcome"] == outcome]
        if found:
            break
        time.sleep(0.1)
    return found
