"""Bad requests to /api/v1 get a 4xx in the API's JSON error format, never a 500; and the
OpenAPI document matches the routes the server has."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
from aiohttp import web

from hatchway.auth.credentials.passwords import PasswordVerifier
from hatchway.auth.selfservice import SelfService
from hatchway.http.api.routes import ROUTES, setup
from hatchway.metadata import MetadataStore
from tests.mgmt.conftest import API, PASSWORD, Checker, error_code
from tests.support.server import Server

TOKENS = f"{API}/me/tokens"
PASSWD = f"{API}/me/password"


def test_malformed_json_is_400(server: Server, check: Checker, shared: str) -> None:
    for raw in (b"{", b"not json", b"", b"[" * 100_000 + b"]" * 100_000):
        r = server.client.post(
            TOKENS,
            content=raw,
            headers={"Content-Type": "application/json"},
            auth=(shared, PASSWORD),
        )
        check(r, 400 if len(raw) < 65536 else 413)
        assert error_code(r) in ("INVALID_JSON", "PAYLOAD_TOO_LARGE")


def test_json_that_is_not_an_object_is_422(server: Server, check: Checker, shared: str) -> None:
    for body in ([], "x", 1, None, [{"name": "x"}]):
        r = server.client.post(
            TOKENS,
            content=json.dumps(body),
            headers={"Content-Type": "application/json; charset=utf-8"},
            auth=(shared, PASSWORD),
        )
        check(r, 422)


def test_wrong_content_type_is_415(server: Server, check: Checker, shared: str) -> None:
    body = json.dumps({"name": "ct", "scopes": ["repository:a:pull"]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        r = server.client.post(TOKENS, content=body, headers=headers, auth=(shared, PASSWORD))
        check(r, 415)
        assert error_code(r) == "UNSUPPORTED_MEDIA_TYPE"


def test_huge_bodies_are_413(server: Server, check: Checker, shared: str) -> None:
    big = json.dumps({"name": "big", "scopes": ["repository:a:pull"] * 20_000})
    r = server.client.post(
        TOKENS, content=big, headers={"Content-Type": "application/json"}, auth=(shared, PASSWORD)
    )
    check(r, 413)
    assert error_code(r) == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(200):
            yield b" " * 4096

    r = server.client.put(
        PASSWD,
        content=chunks(),
        headers={"Content-Type": "application/json"},
        auth=(shared, PASSWORD),
    )
    check(r, 413)


def test_wrong_types_and_unknown_fields_are_422(
    server: Server, check: Checker, shared: str
) -> None:
    for body in (
        {"old_password": PASSWORD},
        {"old_password": PASSWORD, "new_password": 12345678},
        {"old_password": PASSWORD, "new_password": ["a"]},
        {"old_password": PASSWORD, "new_password": "New-pw-123", "extra": 1},
    ):
        r = server.client.put(PASSWD, json=body, auth=(shared, PASSWORD))
        check(r, 422)
        # The problem is named by field, the (secret) input never echoed.
        assert PASSWORD not in r.text
        assert r.json()["errors"][0]["detail"][0]["field"]


def test_unknown_paths_and_methods_are_api_json(
    server: Server, check: Checker, shared: str
) -> None:
    for path in (API, f"{API}/", f"{API}/users", f"{API}/me/", f"{API}/me/tokens/a/b", f"{API}/x"):
        r = server.client.get(path, auth=(shared, PASSWORD))
        assert r.status_code == 404, path
        assert error_code(r) == "NOT_FOUND"
    for method, path in (("DELETE", f"{API}/me"), ("PATCH", TOKENS), ("GET", PASSWD)):
        r = server.client.request(method, path, auth=(shared, PASSWORD))
        check(r, 405)
        assert error_code(r) == "METHOD_NOT_ALLOWED"
    # The registry keeps its own (OCI) format.
    r = server.client.get("/v2/nothing/here/at/all")
    assert r.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_every_documented_operation_is_served(server: Server, check: Checker, shared: str) -> None:
    doc = check.doc
    assert doc["openapi"].startswith("3.1")
    me = (shared, PASSWORD)
    check(
        server.client.post(
            TOKENS, json={"name": "doc-probe", "scopes": "repository:a:pull"}, auth=me
        ),
        201,
    )
    bodies = {
        ("put", PASSWD): {"old_password": PASSWORD, "new_password": PASSWORD},
        ("post", TOKENS): {"name": "doc-probe-2", "scopes": "repository:a:pull"},
    }
    seen = 0
    for template, operations in doc["paths"].items():
        if template.startswith(f"{API}/repositories"):
            continue  # served with real repositories: tests/mgmt/test_repositories.py
        path = re.sub(r"\{[a-z_]+\}", "doc-probe", template)
        for method, operation in operations.items():
            r = server.client.request(method, path, json=bodies.get((method, path)), auth=me)
            assert r.status_code not in (404, 405), (method, path, r.text)
            check(r, r.status_code)
            assert "requestBody" in operation or (method, path) not in bodies
            seen += 1
            # Every other method on a documented path is a documented 405.
            for other in {"get", "put", "post", "delete", "patch"} - set(operations):
                check(server.client.request(other, path, auth=me), 405)
    assert seen == len([r for r in ROUTES if not r.path.startswith("/repositories")])


def test_document_lists_exactly_the_routes(tmp_path: Path, check: Checker) -> None:
    """The router the server builds (the real ``setup``) against the document."""
    app = web.Application()
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        setup(app, SelfService(store, PasswordVerifier(), lambda event: None))
        routed = {
            (r.method.lower(), re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", r.resource.canonical))
            for r in app.router.routes()
            if r.resource is not None and r.resource.canonical.startswith(API)
        }
    finally:
        store.dispose()
    documented = {(m, p) for p, ops in check.doc["paths"].items() for m in ops}
    assert routed == documented


def test_openapi_needs_no_credentials(server: Server) -> None:
    r = httpx.get(f"{server.url}{API}/openapi.json")
    assert r.status_code == 200
    assert {
        f"{API}/me",
        f"{API}/me/password",
        f"{API}/me/tokens",
        f"{API}/me/tokens/{{name}}",
        f"{API}/openapi.json",
        f"{API}/repositories",
        f"{API}/repositories/{{name}}/tags",
        f"{API}/repositories/{{name}}/tags/{{tag}}",
        f"{API}/repositories/{{name}}/manifests/{{reference}}",
    } <= set(r.json()["paths"])
    assert set(r.json()["paths"]) == {API + route.path for route in ROUTES}
