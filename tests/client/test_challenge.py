"""WWW-Authenticate parsing and scope bookkeeping, on the headers real registries send."""

from __future__ import annotations

import pytest

from hatchway.client.challenge import (
    Challenge,
    merge_scopes,
    parse_challenges,
    pick_challenge,
    plain_realm_refused,
    scopes_for,
)


def test_docker_hub_style_bearer() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/alpine:pull",
            },
        )
    ]


def test_quoted_commas_escapes_spaces_and_case() -> None:
    header = (
        'BEARER Realm = "https://a/token?x=1,y=2" , service="svc \\"q\\"",'
        'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"'
    )
    [found] = parse_challenges(header)
    assert found.scheme == "bearer"
    assert found.realm == "https://a/token?x=1,y=2"
    assert found.service == 'svc "q"'
    assert found.scopes == ["repository:a/b:pull,push", "repository:c:pull"]
    assert found.error == "insufficient_scope"


def test_several_challenges_in_one_header() -> None:
    header = 'Basic realm="r, with comma", Bearer realm="https://t/x",service=svc'
    found = parse_challenges(header)
    assert [c.scheme for c in found] == ["basic", "bearer"]
    assert found[0].realm == "r, with comma"
    assert found[1].params == {"realm": "https://t/x", "service": "svc"}
    assert pick_challenge([header]) == found[1]


def test_unquoted_values_and_garbage() -> None:
    [found] = parse_challenges("Bearer realm=https://t/token,service=svc")
    assert found.params == {"realm": "https://t/token", "service": "svc"}
    assert parse_challenges("") == []
    assert parse_challenges('Basic realm="unterminated') == [
        Challenge("basic", {"realm": "unterminated"})
    ]
    assert pick_challenge(["Negotiate abc==", "Basic"]) == Challenge("basic", {})
    assert pick_challenge(['Bearer service="no realm"']) is None
    assert pick_challenge([]) is None


def test_merge_scopes_unions_actions_per_resource() -> None:
    assert merge_scopes(
        ["repository:a/b:pull"], ["repository:a/b:push,pull", "repository:c:pull"]
    ) == ["repository:a/b:pull,push", "repository:c:pull"]
    assert merge_scopes(["registry:catalog:*"], []) == ["registry:catalog:*"]
    assert merge_scopes(["repository:host:5000/x:pull"]) == ["repository:host:5000/x:pull"]
    assert merge_scopes([]) == []


@pytest.mark.parametrize(
    ("method", "path", "query", "scopes"),
    [
        ("GET", "/v2/", b"", []),
        ("GET", "/v2/_catalog", b"n=10", ["registry:catalog:*"]),
        ("HEAD", "/v2/a/b/blobs/sha256:00", b"", ["repository:a/b:pull"]),
        ("GET", "/v2/a/manifests/latest", b"", ["repository:a:pull"]),
        ("GET", "/v2/a/tags/list", b"", ["repository:a:pull"]),
        ("PUT", "/v2/a/manifests/1", b"", ["repository:a:pull,push"]),
        ("PATCH", "/v2/x/blobs/uploads/u1", b"", ["repository:x:pull,push"]),
        ("DELETE", "/v2/x/manifests/sha256:00", b"", ["repository:x:delete"]),
        (
            "POST",
            "/v2/to/blobs/uploads/",
            b"mount=sha256%3A00&from=src%2Frepo",
            ["repository:to:pull,push", "repository:src/repo:pull"],
        ),
        ("GET", "/v2/manifests/blobs/sha256:00", b"", ["repository:manifests:pull"]),
    ],
)
def test_scopes_for_requests(method: str, path: str, query: bytes, scopes: list[str]) -> None:
    assert scopes_for(method, path, query) == scopes


@pytest.mark.parametrize(
    ("registry", "realm", "insecure", "refused"),
    [
        ("https://registry.example.com", "http://auth.example.com/token", False, True),
        ("https://registry.example.com", "HTTP://auth.example.com/token", False, True),
        ("https://registry.example.com", "http://auth.example.com/token", True, False),
        ("https://registry.example.com", "https://auth.example.com/token", False, False),
        ("http://registry.example.com", "http://auth.example.com/token", False, False),
        ("https://127.0.0.1:5000", "http://auth.example.com/token", False, False),
        ("https://[::1]:5000", "http://127.0.0.1:5001/token", False, False),
        ("https://localhost:5000", "http://localhost:5001/token", False, False),
        # Loopback means the registry's host as written, not what a name resolves to.
        ("https://vm:5000", "http://127.0.0.1:5001/token", False, True),
    ],
)
def test_a_plain_http_realm_of_an_https_registry(
    registry: str, realm: str, insecure: bool, refused: bool
) -> None:
    reason = plain_realm_refused(registry, realm, insecure=insecure)
    assert (reason is not None) == refused
    if reason is not None:
        assert "plain HTTP" in reason
        assert "/token" not in reason  # hosts only: a realm's path or query may carry state
