"""Cross-repository mounts with authentication on, in token and Basic mode.

A mount needs push on the target and pull on ``from``. The 401 challenge names both (as
distribution's does), so a client's token carries pull on ``from``; a credential that may
not read ``from`` gets a plain upload session (202), never a refusal. Checked with raw
HTTP and with a real ``skopeo copy`` between two repositories of the same registry.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.authkit import (
    HAVE_SKOPEO,
    HTPASSWD,
    SERVICE,
    Skopeo,
    add_user,
    challenge_of,
    get_token,
    log_mark,
    requests_on,
    start_token_server,
)
from tests.support.images import make_image, write_oci_layout
from tests.support.oci import push_blob, sha256
from tests.support.server import Server, start_server

pytestmark = pytest.mark.e2e
needs_skopeo = pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed")

ALICE = ("alice", "alice-Mount-Pw-1")
BOB = ("bob", "bob-Mount-Pw-2")
BLOB = b"a layer both repositories share" * 100
DIGEST = sha256(BLOB)


def _mount(server: Server, target: str, source: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v2/{target}/blobs/uploads/",
        params={"mount": DIGEST, "from": source},
        headers=headers,
        timeout=30,
    )


def _bearer(server: Server, scopes: list[str], auth: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Bearer " + get_token(server, scopes, auth=auth)}


def _digest_param(path: str, name: str) -> str | None:
    query = parse_qs(urlsplit(path).query)
    return query[name][0] if name in query else None


def _copy_mounts(server: Server, skopeo: Skopeo, tmp_path: Path, owner: str) -> None:
    """skopeo copies an image from ``<owner>/src`` to ``<owner>/dst``: every layer is
    mounted (201 on the mount POST) and none is uploaded into ``dst``. (skopeo sends the
    small config blob through a normal upload whatever the registry does.)"""
    image = make_image(f"mount-{owner}", layer_sizes=(40_000, 900))
    layout = tmp_path / "layout"
    write_oci_layout(layout, image, tag="1")
    skopeo.push(layout, "1", f"docker://{server.addr}/{owner}/src:1")
    since = log_mark(server)
    skopeo.run(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{server.addr}/{owner}/src:1",
        f"docker://{server.addr}/{owner}/dst:1",
    )
    logged = requests_on(server, f"{owner}/dst", since)
    mounted = {
        _digest_param(e.path, "mount") for e in logged if e.method == "POST" and e.status == 201
    }
    uploaded = {_digest_param(e.path, "digest") for e in logged if e.method == "PUT"}
    layers = {layer.digest for layer in image.layers}
    assert layers <= mounted, logged
    assert not layers & uploaded, logged


# -- token mode ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Default rules: each account owns ``<name>/*``; the blob is in ``alice/src``."""
    server = start_token_server(tmp_path_factory.mktemp("mount-token"))
    try:
        add_user(server, *ALICE)
        add_user(server, *BOB)
        headers = _bearer(server, ["repository:alice/src:pull,push"], ALICE)
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            push_blob(client, "alice/src", BLOB)
        yield server
    finally:
        server.stop()


def test_token_challenge_for_a_mount_names_pull_on_from(token_registry: Server) -> None:
    r = _mount(token_registry, "alice/dst", "alice/src", {})
    assert r.status_code == 401, r.text
    found = challenge_of(r)
    assert found.scheme == "Bearer"
    assert found.params["service"] == SERVICE
    assert found.params["scope"].split(" ") == [
        "repository:alice/dst:pull,push",
        "repository:alice/src:pull",
    ]
    # A token that falls short on the target names both again (insufficient_scope).
    r = _mount(token_registry, "alice/dst", "alice/src", _bearer(token_registry, [], ALICE))
    assert r.status_code == 401, r.text
    assert "repository:alice/src:pull" in challenge_of(r).params["scope"]
    # No mount, or a from that is the target or no repository name: the target alone.
    for params in ({"from": "alice/src"}, {"mount": DIGEST, "from": "alice/dst"}):
        r = httpx.post(f"{token_registry.url}/v2/alice/dst/blobs/uploads/", params=params)
        assert challenge_of(r).params["scope"] == "repository:alice/dst:pull,push", params
    r = _mount(token_registry, "alice/dst", "Not//A/Name", {})
    assert challenge_of(r).params["scope"] == "repository:alice/dst:pull,push"


def test_token_with_pull_on_from_mounts(token_registry: Server) -> None:
    scopes = ["repository:alice/dst1:pull,push", "repository:alice/src:pull"]
    r = _mount(token_registry, "alice/dst1", "alice/src", _bearer(token_registry, scopes, ALICE))
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == DIGEST


def test_token_without_pull_on_from_falls_back_to_an_upload(token_registry: Server) -> None:
    # alice's token lacks the source; bob asks for it but may not read alice's repositories.
    cases = [
        (ALICE, "alice/dst2", ["repository:alice/dst2:pull,push"]),
        (BOB, "bob/dst", ["repository:bob/dst:pull,push", "repository:alice/src:pull"]),
    ]
    for who, target, scopes in cases:
        r = _mount(token_registry, target, "alice/src", _bearer(token_registry, scopes, who))
        assert r.status_code == 202, (who, r.text)
        assert r.headers["Location"].startswith(f"/v2/{target}/blobs/uploads/")


@needs_skopeo
def test_skopeo_copy_within_the_registry_mounts_in_token_mode(
    token_registry: Server, tmp_path: Path
) -> None:
    skopeo = Skopeo(tmp_path / "skopeo")
    skopeo.login(token_registry.addr, *ALICE)
    _copy_mounts(token_registry, skopeo, tmp_path, "alice")


# -- Basic (htpasswd) mode -----------------------------------------------------------------


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """htpasswd with alice and bob, each owning ``<name>/*``; the blob is in ``alice/src``."""
    if HTPASSWD is None:
        pytest.skip("htpasswd is not installed (apt-get install apache2-utils)")
    tmp = tmp_path_factory.mktemp("mount-basic")
    path = tmp / "htpasswd"
    for i, (user, password) in enumerate((ALICE, BOB)):
        flags = ["-B", "-c"] if i == 0 else ["-B"]
        subprocess.run(
            [HTPASSWD, *flags, "-b", str(path), user, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
    config = {
        "version": "0.1",
        "auth": {"htpasswd": {"realm": "test", "path": str(path)}},
        "access": [{"repository": "${account}/*", "action": "*"}],
    }
    server = start_server(tmp, config=json.dumps(config))
    try:
        with httpx.Client(base_url=server.url, auth=ALICE, timeout=30) as client:
            push_blob(client, "alice/src", BLOB)
        yield server
    finally:
        server.stop()


def _basic(who: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(":".join(who).encode()).decode()}


def test_basic_caller_who_may_pull_from_mounts(basic_registry: Server) -> None:
    r = _mount(basic_registry, "alice/dst1", "alice/src", _basic(ALICE))
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == DIGEST


def test_basic_caller_who_may_not_pull_from_gets_an_upload(basic_registry: Server) -> None:
    r = _mount(basic_registry, "bob/dst", "alice/src", _basic(BOB))
    assert r.status_code == 202, r.text
    assert r.headers["Location"].startswith("/v2/bob/dst/blobs/uploads/")
    # ...and the blob did not become readable in bob's repository.
    head = httpx.head(f"{basic_registry.url}/v2/bob/dst/blobs/{DIGEST}", auth=BOB)
    assert head.status_code == 404


@needs_skopeo
def test_skopeo_copy_within_the_registry_mounts_in_basic_mode(
    basic_registry: Server, tmp_path: Path
) -> None:
    skopeo = Skopeo(tmp_path / "skopeo")
    skopeo.login(basic_registry.addr, *ALICE)
    _copy_mounts(basic_registry, skopeo, tmp_path, "alice")
