"""skopeo against the built-in token service: logins, the admin, a user's own namespace,
anonymous pulls with and without an ``access`` rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.authkit import (
    ADMIN,
    ADMIN_PASSWORD,
    HAVE_SKOPEO,
    Skopeo,
    add_user,
    assert_refused,
    get_token,
    log_mark,
    start_token_server,
    stderr,
)
from tests.support.images import Image, make_image, write_oci_layout
from tests.support.layouts import layout_blobs
from tests.support.server import Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed"),
]

ALICE_PASSWORD = "alice-Pw-0123"
REFUSED = ("denied", "unauthorized", "authentication required")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Token mode with the default rules (each account owns ``<name>/*``); alice is added
    with ``hatchway user add`` while the server runs."""
    server = start_token_server(tmp_path_factory.mktemp("auth-skopeo"))
    try:
        add_user(server, "alice", ALICE_PASSWORD)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def anonymous_pull(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Token mode with one rule: anonymous (so everyone) may pull every repository."""
    server = start_token_server(
        tmp_path_factory.mktemp("auth-anon"),
        access=[{"name": "anonymous", "type": "registry", "action": "pull"}],
    )
    try:
        add_user(server, "alice", ALICE_PASSWORD)
        yield server
    finally:
        server.stop()


def new_skopeo(tmp_path: Path, name: str) -> Skopeo:
    return Skopeo(tmp_path / f"skopeo-{name}")


def layout(tmp_path: Path, seed: str, tag: str = "1.0") -> tuple[Path, Image]:
    image = make_image(seed, layer_sizes=(50_000, 700))
    path = tmp_path / f"layout-{seed}"
    write_oci_layout(path, image, tag=tag)
    return path, image


def refused(result_stderr: str) -> bool:
    return any(word in result_stderr.lower() for word in REFUSED)


def test_login_right_and_wrong_password(registry: Server, tmp_path: Path) -> None:
    good = new_skopeo(tmp_path, "good")
    ok = good.login(registry.addr, ADMIN, ADMIN_PASSWORD)
    assert b"Login Succeeded" in ok.stdout
    assert registry.addr in json.loads(good.auth_file.read_text())["auths"]

    for user, password in ((ADMIN, "not-the-password"), ("nobody", ADMIN_PASSWORD)):
        bad = new_skopeo(tmp_path, f"bad-{user}")
        result = bad.login(registry.addr, user, password, check=False)
        assert result.returncode != 0, (user, result.stdout)
        assert "invalid username/password" in stderr(result), stderr(result)
        assert registry.addr not in json.loads(bad.auth_file.read_text())["auths"]


def test_admin_copy_in_and_out_list_tags_delete(registry: Server, tmp_path: Path) -> None:
    skopeo = new_skopeo(tmp_path, "admin")
    skopeo.login(registry.addr, ADMIN, ADMIN_PASSWORD)
    src, image = layout(tmp_path, "admin-round-trip")
    ref = f"docker://{registry.addr}/team/admin-app:1.0"

    skopeo.push(src, "1.0", ref)
    info = skopeo.json("inspect", "--tls-verify=false", ref)
    assert info["Digest"] == image.manifest.digest
    assert info["Layers"] == [layer.digest for layer in image.layers]
    skopeo.run(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        ref,
        f"docker://{registry.addr}/team/admin-app:latest",
    )
    tags = skopeo.json(
        "list-tags", "--tls-verify=false", f"docker://{registry.addr}/team/admin-app"
    )
    assert tags == {"Repository": f"{registry.addr}/team/admin-app", "Tags": ["1.0", "latest"]}

    out = tmp_path / "out"
    skopeo.pull(ref, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)

    skopeo.run("delete", "--tls-verify=false", ref)
    gone = skopeo.run("inspect", "--tls-verify=false", ref, check=False)
    assert gone.returncode != 0
    assert "manifest unknown" in stderr(gone).lower(), stderr(gone)
    tags = skopeo.json(
        "list-tags", "--tls-verify=false", f"docker://{registry.addr}/team/admin-app"
    )
    assert tags["Tags"] == []


def test_user_pushes_only_to_own_namespace(registry: Server, tmp_path: Path) -> None:
    skopeo = new_skopeo(tmp_path, "alice")
    skopeo.login(registry.addr, "alice", ALICE_PASSWORD)
    src, image = layout(tmp_path, "alice-namespace")
    own = f"docker://{registry.addr}/alice/app:1.0"

    skopeo.push(src, "1.0", own)
    info = skopeo.json("inspect", "--tls-verify=false", own)
    assert info["Digest"] == image.manifest.digest
    out = tmp_path / "out"
    skopeo.pull(own, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)

    for repository in ("team/app", "bob/x", "alice2/x"):
        mark = log_mark(registry)
        result = skopeo.push(src, "1.0", f"docker://{registry.addr}/{repository}:1.0", check=False)
        assert result.returncode != 0, repository
        assert refused(stderr(result)), stderr(result)
        assert_refused(registry, repository, since=mark)

    # Nothing of the refused pushes was stored: the admin finds no such repositories.
    admin = (ADMIN, ADMIN_PASSWORD)
    for repository in ("team/app", "bob/x", "alice2/x"):
        token = get_token(registry, [f"repository:{repository}:pull"], auth=admin)
        r = httpx.get(
            f"{registry.url}/v2/{repository}/tags/list",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 404, (repository, r.status_code, r.text)

    # Default rules give delete in the own namespace too.
    skopeo.run("delete", "--tls-verify=false", own)
    assert skopeo.run("inspect", "--tls-verify=false", own, check=False).returncode != 0


def test_anonymous_cannot_pull_or_push_by_default(registry: Server, tmp_path: Path) -> None:
    admin = new_skopeo(tmp_path, "admin")
    admin.login(registry.addr, ADMIN, ADMIN_PASSWORD)
    src, _ = layout(tmp_path, "anon-default")
    ref = f"docker://{registry.addr}/team/private:1.0"
    admin.push(src, "1.0", ref)

    anonymous = new_skopeo(tmp_path, "anonymous")
    mark = log_mark(registry)
    for args in (
        ("inspect", "--tls-verify=false", ref),
        ("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'out'}:1.0"),
        ("list-tags", "--tls-verify=false", f"docker://{registry.addr}/team/private"),
    ):
        result = anonymous.run(*args, check=False)
        assert result.returncode != 0, args
        assert refused(stderr(result)), stderr(result)
    assert_refused(registry, "team/private", since=mark)

    mark = log_mark(registry)
    result = anonymous.push(src, "1.0", f"docker://{registry.addr}/team/private:2.0", check=False)
    assert result.returncode != 0
    assert_refused(registry, "team/private", since=mark)


def test_anonymous_pull_rule_lets_everyone_pull_but_nobody_push(
    anonymous_pull: Server, tmp_path: Path
) -> None:
    server = anonymous_pull
    admin = new_skopeo(tmp_path, "admin")
    admin.login(server.addr, ADMIN, ADMIN_PASSWORD)
    src, image = layout(tmp_path, "anon-rule")
    ref = f"docker://{server.addr}/team/app:1.0"
    admin.push(src, "1.0", ref)

    # No login at all: pulls work, on any repository.
    anonymous = new_skopeo(tmp_path, "anonymous")
    info = anonymous.json("inspect", "--tls-verify=false", ref)
    assert info["Digest"] == image.manifest.digest
    out = tmp_path / "anon-out"
    anonymous.pull(ref, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)
    tags = anonymous.json("list-tags", "--tls-verify=false", f"docker://{server.addr}/team/app")
    assert tags["Tags"] == ["1.0"]

    for repository in ("team/app", "anon/new"):
        mark = log_mark(server)
        result = anonymous.push(src, "1.0", f"docker://{server.addr}/{repository}:2.0", check=False)
        assert result.returncode != 0, repository
        assert refused(stderr(result)), stderr(result)
        assert_refused(server, repository, since=mark, reads_allowed=True)

    # A signed-in account has what anonymous has: alice pulls (and, with explicit rules
    # replacing the defaults, may push nowhere).
    alice = new_skopeo(tmp_path, "alice")
    alice.login(server.addr, "alice", ALICE_PASSWORD)
    out = tmp_path / "alice-out"
    alice.pull(ref, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)
    mark = log_mark(server)
    result = alice.push(src, "1.0", f"docker://{server.addr}/team/app:3.0", check=False)
    assert result.returncode != 0
    assert_refused(server, "team/app", since=mark, reads_allowed=True)

    # The tag the refused pushes aimed at does not exist.
    tags = anonymous.json("list-tags", "--tls-verify=false", f"docker://{server.addr}/team/app")
    assert tags["Tags"] == ["1.0"]
