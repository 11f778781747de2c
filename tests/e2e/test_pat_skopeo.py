"""Personal access tokens end to end: ``hatchway token create`` -> ``skopeo login`` with the
secret, scopes that narrow what the account may do, revocation of logins and issued JWTs,
and the last use shown by ``hatchway token list``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.authkit import (
    ADMIN,
    ADMIN_PASSWORD,
    HAVE_SKOPEO,
    SERVICE,
    Skopeo,
    add_user,
    assert_refused,
    challenge_of,
    create_pat,
    get_token,
    hatchway_cli,
    jwt_payload,
    log_mark,
    start_token_server,
    stderr,
)
from tests.support.images import make_image, write_oci_layout
from tests.support.layouts import layout_blobs
from tests.support.server import Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed"),
]

PASSWORD = "user-Pw-0123"
USERS = ("alice", "dave", "erin", "carol")
REFUSED = ("denied", "unauthorized", "authentication required")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_token_server(tmp_path_factory.mktemp("pat"))
    try:
        for user in USERS:
            add_user(server, user, PASSWORD)
        yield server
    finally:
        server.stop()


def layout(tmp_path: Path, seed: str) -> Path:
    path = tmp_path / f"layout-{seed}"
    write_oci_layout(path, make_image(seed, layer_sizes=(20_000,)), tag="1.0")
    return path


def refused(text: str) -> bool:
    return any(word in text.lower() for word in REFUSED)


def token_rows(server: Server, user: str) -> dict[str, dict[str, str]]:
    """``hatchway token list --user USER`` as {name: {column: value}}."""
    lines = hatchway_cli(server.data, "token", "list", "--user", user).stdout.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    rows = [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=True)) for line in lines[1:]]
    return {row["NAME"]: row for row in rows}


def test_pat_logs_in_and_pushes_within_its_scope(registry: Server, tmp_path: Path) -> None:
    secret = create_pat(registry, "alice", "ci", ["repository:alice/*:pull,push"], "30d")
    before = token_rows(registry, "alice")["ci"]
    assert before["USER"] == "alice"
    assert before["SCOPES"] == "repository:alice/*:pull,push"
    assert before["LAST USED"] == "never"
    assert before["FROM"] == "-"
    expires = datetime.strptime(before["EXPIRES"], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
    assert 29 * 86400 < (expires - datetime.now(UTC)).total_seconds() <= 30 * 86400

    skopeo = Skopeo(tmp_path / "skopeo")
    ok = skopeo.login(registry.addr, "alice", secret)
    assert b"Login Succeeded" in ok.stdout
    src = layout(tmp_path, "pat-ci")
    ref = f"docker://{registry.addr}/alice/app:1.0"
    skopeo.push(src, "1.0", ref)
    out = tmp_path / "out"
    skopeo.pull(ref, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)

    # Outside the token's scope: other namespaces (the account may not either; alice/*
    # does not cover alice2/x) ...
    for repository in ("bob/x", "alice2/x"):
        mark = log_mark(registry)
        result = skopeo.push(src, "1.0", f"docker://{registry.addr}/{repository}:1.0", check=False)
        assert result.returncode != 0, repository
        assert refused(stderr(result)), stderr(result)
        assert_refused(registry, repository, since=mark)
    # ... and delete, which alice's account may do in alice/* but the token does not name.
    mark = log_mark(registry)
    result = skopeo.run("delete", "--tls-verify=false", ref, check=False)
    assert result.returncode != 0
    assert_refused(registry, "alice/app", since=mark, reads_allowed=True)
    assert skopeo.run("inspect", "--tls-verify=false", ref, check=False).returncode == 0

    after = token_rows(registry, "alice")["ci"]
    assert after["LAST USED"] != "never"
    used = datetime.strptime(after["LAST USED"], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - used).total_seconds()) < 120
    assert after["FROM"] == "127.0.0.1"


def test_pull_only_pat_cannot_push(registry: Server, tmp_path: Path) -> None:
    src = layout(tmp_path, "pat-ro")
    ref = f"docker://{registry.addr}/dave/app:1.0"
    with_password = Skopeo(tmp_path / "skopeo-password")
    with_password.login(registry.addr, "dave", PASSWORD)
    with_password.push(src, "1.0", ref)

    secret = create_pat(registry, "dave", "ro", ["repository:dave/*:pull"])
    skopeo = Skopeo(tmp_path / "skopeo-pat")
    skopeo.login(registry.addr, "dave", secret)
    out = tmp_path / "out"
    skopeo.pull(ref, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)

    for target in ("dave/app:2.0", "dave/new:1.0"):
        repository = target.split(":", 1)[0]
        mark = log_mark(registry)
        result = skopeo.push(src, "1.0", f"docker://{registry.addr}/{target}", check=False)
        assert result.returncode != 0, target
        assert refused(stderr(result)), stderr(result)
        assert_refused(registry, repository, since=mark, reads_allowed=True)
    tags = skopeo.json("list-tags", "--tls-verify=false", f"docker://{registry.addr}/dave/app")
    assert tags["Tags"] == ["1.0"]


def test_pat_works_only_for_its_own_account(registry: Server, tmp_path: Path) -> None:
    secret = create_pat(registry, "erin", "mine", ["repository:erin/*:pull"])
    for user in ("alice", ADMIN, "nobody"):
        skopeo = Skopeo(tmp_path / f"skopeo-{user}")
        result = skopeo.login(registry.addr, user, secret, check=False)
        assert result.returncode != 0, user
        assert "invalid username/password" in stderr(result), stderr(result)
    assert Skopeo(tmp_path / "skopeo-erin").login(registry.addr, "erin", secret).returncode == 0


def test_admin_pat_is_narrowed_to_its_scope(registry: Server, tmp_path: Path) -> None:
    src = layout(tmp_path, "pat-admin")
    ref = f"docker://{registry.addr}/team/tool:1.0"
    admin = Skopeo(tmp_path / "skopeo-admin")
    admin.login(registry.addr, ADMIN, ADMIN_PASSWORD)
    admin.push(src, "1.0", ref)

    secret = create_pat(registry, ADMIN, "reader", ["repository:team/*:pull"])
    reader = Skopeo(tmp_path / "skopeo-reader")
    reader.login(registry.addr, ADMIN, secret)
    reader.pull(ref, tmp_path / "out", "1.0")
    mark = log_mark(registry)
    result = reader.push(src, "1.0", f"docker://{registry.addr}/team/tool:2.0", check=False)
    assert result.returncode != 0
    assert_refused(registry, "team/tool", since=mark, reads_allowed=True)
    mark = log_mark(registry)
    result = reader.run(
        "inspect", "--tls-verify=false", f"docker://{registry.addr}/other/x:1.0", check=False
    )
    assert result.returncode != 0
    assert_refused(registry, "other/x", since=mark)


def test_revoked_pat_stops_logins_at_once_and_its_jwts_within_seconds(
    registry: Server, tmp_path: Path
) -> None:
    src = layout(tmp_path, "pat-revoke")
    secret = create_pat(registry, "carol", "ci", ["repository:carol/*:pull,push"])
    skopeo = Skopeo(tmp_path / "skopeo")
    skopeo.login(registry.addr, "carol", secret)
    skopeo.push(src, "1.0", f"docker://{registry.addr}/carol/app:1.0")

    jwt = get_token(registry, ["repository:carol/app:pull"], auth=("carol", secret))
    assert jwt_payload(jwt)["token_id"]
    offline = httpx.get(
        registry.url + "/auth/token",
        params={"service": SERVICE, "offline_token": "true", "client_id": "e2e"},
        auth=("carol", secret),
    )
    assert offline.status_code == 200, offline.text
    refresh = offline.json()["refresh_token"]
    headers = {"Authorization": f"Bearer {jwt}"}
    tags_url = f"{registry.url}/v2/carol/app/tags/list"
    r = httpx.get(tags_url, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["1.0"]

    out = hatchway_cli(registry.data, "token", "revoke", "ci", "--user", "carol").stdout
    assert "Revoked token" in out
    revoked_at = time.monotonic()

    # Logins with the secret fail at once.
    result = Skopeo(tmp_path / "skopeo-after").login(registry.addr, "carol", secret, check=False)
    assert result.returncode != 0
    assert "invalid username/password" in stderr(result), stderr(result)
    r = httpx.get(
        registry.url + "/auth/token",
        params={"service": SERVICE, "scope": "repository:carol/app:pull"},
        auth=("carol", secret),
    )
    assert r.status_code == 401, r.text
    # So do refresh tokens obtained through it.
    r = httpx.post(
        registry.url + "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": "e2e",
            "service": SERVICE,
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"

    # A JWT minted from it stops working within the registry's 5 s revocation cache.
    while True:
        r = httpx.get(tags_url, headers=headers)
        elapsed = time.monotonic() - revoked_at
        if r.status_code != 200:
            break
        assert elapsed < 6.5, "a JWT of a revoked token still works after 6.5 s"
        time.sleep(0.2)
    assert r.status_code == 401, r.text
    challenge = challenge_of(r)
    assert challenge.scheme == "Bearer"
    assert challenge.params["error"] == "invalid_token"
    assert challenge.params["scope"] == "repository:carol/app:pull"

    # The account's password still works: only the token was revoked.
    assert Skopeo(tmp_path / "skopeo-pw").login(registry.addr, "carol", PASSWORD).returncode == 0
    rows = hatchway_cli(registry.data, "token", "list", "--user", "carol", "--all").stdout
    assert re.search(r"\bci\b.*\brevoked\b", rows), rows
