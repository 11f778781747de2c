"""``auth: {htpasswd: ...}`` alone: HTTP Basic on every request against a file made by the
real ``htpasswd -B``, re-read while the server runs, decided by the access rules."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.authkit import (
    HAVE_SKOPEO,
    HTPASSWD,
    Skopeo,
    assert_refused,
    challenge_of,
    log_mark,
    requests_on,
    stderr,
)
from tests.support.images import make_image, write_oci_layout
from tests.support.layouts import layout_blobs
from tests.support.oci import push_image
from tests.support.server import Server, start_server

pytestmark = pytest.mark.skipif(
    HTPASSWD is None, reason="htpasswd is not installed (apt-get install apache2-utils)"
)
needs_skopeo = pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed")

ALICE = ("alice", "pw")
BOB = ("bob", "pw2")
REALM = "test"


def htpasswd(path: Path, user: str, password: str, *flags: str) -> None:
    assert HTPASSWD is not None
    subprocess.run(
        [HTPASSWD, *flags, "-b", str(path), user, password],
        check=True,
        capture_output=True,
        timeout=30,
    )


def start(tmp: Path) -> tuple[Server, Path]:
    path = tmp / "htpasswd"
    htpasswd(path, *ALICE, "-B", "-c")
    config = {
        "version": "0.1",
        "auth": {"htpasswd": {"realm": REALM, "path": str(path)}},
        "access": [{"name": "alice", "type": "registry", "action": "*"}],
        "storage": {"delete": {"enabled": True}},
    }
    return start_server(tmp, config=json.dumps(config)), path


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # One per test: wrong-password tests trip the brute-force throttle (5 failures per
    # account, 20 per address), which would then lock the next test's alice out.
    server, _ = start(tmp_path_factory.mktemp("htpasswd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def changing(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """A server of its own, for tests that edit its htpasswd file."""
    server, path = start(tmp_path)
    try:
        yield server, path
    finally:
        server.stop()


def v2(server: Server, auth: tuple[str, str] | None) -> httpx.Response:
    return httpx.get(server.url + "/v2/", auth=auth, timeout=30)


def assert_basic_challenge(response: httpx.Response, status: int = 401) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    found = challenge_of(response)
    assert found.scheme == "Basic", found
    assert found.params == {"realm": REALM}, found
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{REALM}"'


def wait_for_status(server: Server, auth: tuple[str, str], status: int, within: float) -> float:
    """Seconds until ``GET /v2/`` with ``auth`` answers ``status`` (fails after ``within``)."""
    start_at = time.monotonic()
    while True:
        got = v2(server, auth).status_code
        elapsed = time.monotonic() - start_at
        if got == status:
            return elapsed
        assert elapsed < within, f"still {got} after {elapsed:.1f} s"
        # Each refused try counts as a failed login: polling faster would trip the
        # brute-force throttle (5 per account) before the file is re-read (~1 s).
        time.sleep(0.4)


def test_v2_without_credentials_is_challenged(registry: Server) -> None:
    """distribution's htpasswd controller: no credentials, no /v2/ (clients' ``login``
    relies on this 401 to send the password at all)."""
    assert_basic_challenge(v2(registry, None))


def test_v2_with_right_and_wrong_password(registry: Server) -> None:
    r = v2(registry, ALICE)
    assert r.status_code == 200, r.text
    assert r.json() == {}
    for auth in (("alice", "wrong"), ("nobody", "pw"), ("alice", "")):
        r = v2(registry, auth)
        assert_basic_challenge(r)
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_repository_requests_need_credentials(registry: Server) -> None:
    for method, path in (
        ("GET", "/v2/alice/app/tags/list"),
        ("POST", "/v2/alice/app/blobs/uploads/"),
        ("GET", "/v2/_catalog"),
    ):
        r = httpx.request(method, registry.url + path)
        assert_basic_challenge(r)
        r = httpx.request(method, registry.url + path, auth=("alice", "wrong"))
        assert_basic_challenge(r)


def test_rule_holder_may_do_everything(registry: Server) -> None:
    image = make_image("htpasswd-http", layer_sizes=(256,))
    with httpx.Client(base_url=registry.url, auth=ALICE) as client:
        push_image(client, "team/http", image, "1.0")
        r = client.get("/v2/team/http/tags/list")
        assert r.json() == {"name": "team/http", "tags": ["1.0"]}
        r = client.get("/v2/_catalog")
        assert "team/http" in r.json()["repositories"]
        r = client.delete(f"/v2/team/http/manifests/{image.manifest.digest}")
        assert r.status_code == 202, r.text


@pytest.mark.e2e
@needs_skopeo
def test_skopeo_login_and_copy(registry: Server, tmp_path: Path) -> None:
    skopeo = Skopeo(tmp_path / "skopeo")
    assert b"Login Succeeded" in skopeo.login(registry.addr, *ALICE).stdout
    image = make_image("htpasswd-skopeo", layer_sizes=(40_000,))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1.0")
    ref = f"docker://{registry.addr}/team/app:1.0"
    skopeo.push(src, "1.0", ref)
    assert skopeo.json("inspect", "--tls-verify=false", ref)["Digest"] == image.manifest.digest
    out = tmp_path / "out"
    skopeo.pull(ref, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)
    tags = skopeo.json("list-tags", "--tls-verify=false", f"docker://{registry.addr}/team/app")
    assert tags["Tags"] == ["1.0"]
    skopeo.run("delete", "--tls-verify=false", ref)

    wrong = Skopeo(tmp_path / "skopeo-wrong")
    result = wrong.login(registry.addr, "alice", "wrong", check=False)
    assert result.returncode != 0, result.stdout
    assert "invalid username/password" in stderr(result), stderr(result)


@pytest.mark.e2e
@needs_skopeo
def test_user_added_while_running_logs_in_and_is_denied_without_a_rule(
    changing: tuple[Server, Path], tmp_path: Path
) -> None:
    server, path = changing
    assert_basic_challenge(v2(server, BOB))
    htpasswd(path, *BOB, "-B")
    assert wait_for_status(server, BOB, 200, within=2.5) <= 2.5
    assert b"Login Succeeded" in Skopeo(tmp_path / "skopeo-login").login(server.addr, *BOB).stdout

    # bob is known but no rule gives him anything: 403 DENIED, asking again cannot help.
    r = httpx.post(server.url + "/v2/bob/x/blobs/uploads/", auth=BOB)
    assert r.status_code == 403, r.text
    assert r.json()["errors"][0]["code"] == "DENIED"
    r = httpx.get(server.url + "/v2/bob/x/tags/list", auth=BOB)
    assert r.status_code == 403, r.text

    skopeo = Skopeo(tmp_path / "skopeo")
    skopeo.login(server.addr, *BOB)
    src = tmp_path / "src"
    write_oci_layout(src, make_image("htpasswd-bob", layer_sizes=(1000,)), tag="1.0")
    mark_at = log_mark(server)
    result = skopeo.push(src, "1.0", f"docker://{server.addr}/bob/x:1.0", check=False)
    assert result.returncode != 0
    said = stderr(result).lower()
    assert "denied" in said or "403 (forbidden)" in said, said
    assert_refused(server, "bob/x", since=mark_at)
    assert 403 in [e.status for e in requests_on(server, "bob/x", mark_at)]


def test_broken_file_keeps_the_users_loaded_before(changing: tuple[Server, Path]) -> None:
    server, path = changing
    htpasswd(path, *BOB, "-B")
    wait_for_status(server, BOB, 200, within=2.5)
    good = path.read_text()

    # A botched edit: a line that is not user:hash, and a new user beside it.
    htpasswd(path, "carol", "pw3", "-B")
    path.write_text(path.read_text() + "this line is garbage\n")
    time.sleep(1.2)  # past the re-read interval: the next request re-reads the file
    for _ in range(3):
        for auth in (ALICE, BOB):
            assert v2(server, auth).status_code == 200, auth
        assert_basic_challenge(v2(server, ("carol", "pw3")))
        assert_basic_challenge(v2(server, ("alice", "wrong")))
        time.sleep(0.5)
    assert "htpasswd file refused" in server.log()
    assert "line is garbage" not in server.log()  # the message names the line, not its text

    # Fixed: carol comes in; an entry removed from the file goes out.
    path.write_text(good.replace(good.splitlines()[0] + "\n", ""))
    htpasswd(path, "carol", "pw3", "-B")
    wait_for_status(server, ("carol", "pw3"), 200, within=2.5)
    wait_for_status(server, ALICE, 401, within=2.5)
    assert v2(server, BOB).status_code == 200


def test_non_bcrypt_entries_are_ignored(changing: tuple[Server, Path]) -> None:
    server, path = changing
    htpasswd(path, "md5user", "pw", "-m")
    htpasswd(path, "shauser", "pw", "-s")
    htpasswd(path, "dave", "pw4", "-B")
    wait_for_status(server, ("dave", "pw4"), 200, within=2.5)
    for auth in (("md5user", "pw"), ("shauser", "pw")):
        assert_basic_challenge(v2(server, auth))
    assert v2(server, ALICE).status_code == 200
