"""The rule that keeps 2FA meaningful: an account with a second factor cannot sign in with
its password alone where no code can be asked (``/auth/token``, ``docker login``, skopeo,
``/api/v1`` Basic); the refusal says why, and tokens keep working. ``required`` makes
accounts that must enrol face the same refusal, enrolment excepted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.mgmt.conftest import API, Checker, offline_refresh_token, redeem
from tests.support.authkit import (
    ADMIN,
    ADMIN_PASSWORD,
    HAVE_SKOPEO,
    SERVICE,
    Skopeo,
    add_user,
    create_pat,
    hatchway_cli,
    stderr,
)
from tests.support.images import make_image, write_oci_layout
from tests.support.logins import DOCKER, docker_login, hatchway_login, make_home
from tests.support.server import Server
from tests.twofactor.conftest import PASSWORD, enrol, start

SAYS = "two-factor authentication"


def token_get(server: Server, user: str, password: str) -> httpx.Response:
    return server.client.get(
        "/auth/token",
        params={"service": SERVICE, "scope": f"repository:{user}/app:pull"},
        auth=(user, password),
    )


def token_post(server: Server, user: str, password: str) -> httpx.Response:
    return server.client.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": user,
            "password": password,
            "client_id": "tf-test",
            "service": SERVICE,
        },
    )


def assert_refused(server: Server, user: str, password: str, says: str = SAYS) -> None:
    r = token_get(server, user, password)
    assert r.status_code == 401, r.text
    assert says in r.json()["errors"][0]["message"]
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    r = token_post(server, user, password)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_grant"
    assert says in r.json()["error_description"]
    assert "hatchway login --sso" in r.json()["error_description"]
    r = server.client.get(f"{API}/me", auth=(user, password))
    assert r.status_code == 401
    assert says in r.json()["errors"][0]["message"]


def test_password_refused_tokens_work(
    server: Server, check: Checker, user: str, tmp_path: Path
) -> None:
    assert token_get(server, user, PASSWORD).status_code == 200
    refresh = offline_refresh_token(server, user, PASSWORD)
    enrol(server, check, user)
    assert_refused(server, user, PASSWORD)
    # A refresh token from a password sign-in before enrolment was revoked with it.
    assert redeem(server, refresh) == 400
    # The wrong password is still just wrong (no hint that 2FA is on).
    r = token_get(server, user, "wrong-Pw-1")
    assert r.status_code == 401
    assert SAYS not in r.text
    pat = create_pat(server, user, "ci", [f"repository:{user}/*:pull,push"])
    assert token_get(server, user, pat).status_code == 200
    assert token_post(server, user, pat).status_code == 200


@pytest.mark.e2e
@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_login_shows_why(server: Server, check: Checker, user: str, tmp_path: Path) -> None:
    enrol(server, check, user)
    done = docker_login(make_home(tmp_path), server.addr, user, PASSWORD)
    assert done.returncode != 0
    assert SAYS in done.stderr, done.stderr
    assert "personal access token" in done.stderr
    pat = create_pat(server, user, "docker", [f"repository:{user}/*:pull"])
    done = docker_login(make_home(tmp_path, "home2"), server.addr, user, pat)
    assert done.returncode == 0, done.stderr


def test_hatchway_login_refused_pat_works(
    server: Server, check: Checker, user: str, tmp_path: Path
) -> None:
    enrol(server, check, user)
    done = hatchway_login(make_home(tmp_path), server.addr, user, PASSWORD)
    # Refused, with the token service's reason passed through as docker prints it.
    assert done.returncode == 1
    assert done.stderr.startswith("Error: unauthorized"), done.stderr
    assert "two-factor" in done.stderr, done.stderr
    assert "hatchway login --sso" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    pat = create_pat(server, user, "cli", [f"repository:{user}/*:pull"])
    done = hatchway_login(make_home(tmp_path, "home2"), server.addr, user, pat)
    assert done.returncode == 0, done.stderr


@pytest.mark.e2e
@pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed")
def test_skopeo_password_refused_pat_copies(
    server: Server, check: Checker, user: str, tmp_path: Path
) -> None:
    enrol(server, check, user)
    skopeo = Skopeo(tmp_path / "skopeo")
    refused = skopeo.login(server.addr, user, PASSWORD, check=False)
    assert refused.returncode != 0
    # skopeo (containers/image) reports any 401 of the token endpoint as "invalid
    # username/password" and drops the server's message; docker prints it.
    assert "invalid username/password" in stderr(refused), stderr(refused)
    pat = create_pat(server, user, "skopeo", [f"repository:{user}/*:pull,push"])
    assert b"Login Succeeded" in skopeo.login(server.addr, user, pat).stdout
    src = tmp_path / "layout"
    write_oci_layout(src, make_image("tf", layer_sizes=(5_000,)), tag="1.0")
    skopeo.push(src, "1.0", f"docker://{server.addr}/{user}/app:1.0")
    skopeo.pull(f"docker://{server.addr}/{user}/app:1.0", tmp_path / "out", "1.0")


@pytest.fixture(scope="module")
def admins_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start(tmp_path_factory.mktemp("tf-admins"), required="admins")
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="module")
def all_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start(tmp_path_factory.mktemp("tf-all"), required="all")
    try:
        yield found
    finally:
        found.stop()


def test_required_admins(admins_server: Server) -> None:
    server, check = admins_server, Checker(admins_server)
    add_user(server, "plain", PASSWORD)
    add_user(server, "boss", PASSWORD, admin=True)
    assert token_get(server, "plain", PASSWORD).status_code == 200
    assert_refused(server, "boss", PASSWORD, says="must set up two-factor")
    assert_refused(server, ADMIN, ADMIN_PASSWORD, says="must set up two-factor")
    # Enrolment stays open to the password, or the admin could never enrol.
    enrol(server, check, "boss")
    assert_refused(server, "boss", PASSWORD)  # now: has 2FA, use tokens
    pat = create_pat(server, "boss", "ops", ["repository:*:pull"])
    me = check(server.client.get(f"{API}/me", headers={"Authorization": f"Bearer {pat}"}), 200)
    assert me["twofactor"]["required"] is True
    assert me["twofactor"]["enabled"] is True


def test_required_all(all_server: Server) -> None:
    server, check = all_server, Checker(all_server)
    add_user(server, "someone", PASSWORD)
    assert_refused(server, "someone", PASSWORD, says="must set up two-factor")
    me = server.client.get(f"{API}/me", auth=("someone", PASSWORD))
    assert "POST /api/v1/me/twofactor/totp" in me.json()["errors"][0]["message"]
    # A robot has no password and no second factor: its token works.
    hatchway_cli(server.data, "user", "add-robot", "builder")
    robot = create_pat(server, "builder", "ci", ["repository:builds/*:push,pull"])
    assert token_get(server, "builder", robot).status_code == 200
    enrol(server, check, "someone")
    assert_refused(server, "someone", PASSWORD)
