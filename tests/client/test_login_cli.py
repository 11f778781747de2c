"""``hatchway login``/``logout`` against three real registries (hatchway's token service,
hatchway with htpasswd, Debian's docker-registry), checked against what the real docker
CLI writes and what skopeo reads."""

from __future__ import annotations

import base64
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hatchway.client.auth import RegistryAuth
from hatchway.client.credstore import credentials_lookup
from hatchway.client.registry import RegistryClient
from tests.support.authkit import HAVE_SKOPEO, Skopeo
from tests.support.logins import (
    DOCKER,
    Home,
    docker_login,
    hatchway_login,
    make_home,
    run_hatchway,
)
from tests.support.oci import OCI_MANIFEST
from tests.support.registries import DISTRIBUTION, HTPASSWD, Registry, start_registry

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(HTPASSWD is None, reason="htpasswd is not installed (apache2-utils)"),
    pytest.mark.skipif(DISTRIBUTION is None, reason="docker-registry is not installed"),
]
needs_docker = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
needs_skopeo = pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed")

KINDS = ["token", "htpasswd", "distribution"]
WRONG = "Error: unauthorized: incorrect username or password\n"
WARNING = re.compile(
    r"\nWARNING! Your credentials are stored unencrypted in '(?P<path>[^']+)'\.\n"
    r"Configure a credential helper to remove this warning\. See\n"
    r"https://docs\.docker\.com/go/credential-store/\n"
)


@pytest.fixture(scope="module", params=KINDS)
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    kind: str = request.param
    found = start_registry(kind, tmp_path_factory.mktemp(f"login-{kind}"))
    try:
        yield found
    finally:
        assert found.stop is not None
        found.stop()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_stores_what_docker_stores(registry: Registry, home: Home) -> None:
    user, password = registry.user
    done = hatchway_login(home, registry.addr, user, password)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Login Succeeded\n"
    warning = WARNING.search(done.stderr)
    assert warning is not None, done.stderr
    assert warning.group("path") == str(home.config_file)
    assert mode(home.config_file) == 0o600
    assert mode(home.docker_config) == 0o700
    entry = home.config()["auths"][registry.addr]
    if registry.kind == "token":
        # docker's shape after a token login: the username alone, the refresh token
        # in place of the password.
        assert entry["auth"] == b64(f"{user}:")
        assert entry["identitytoken"].startswith("hwr_")
        assert set(entry) == {"auth", "identitytoken"}
    else:
        assert entry == {"auth": b64(f"{user}:{password}")}
    assert home.config() == {"auths": {registry.addr: entry}}
    assert password not in home.config_file.read_text()


@needs_docker
def test_byte_for_byte_what_the_docker_cli_writes(
    registry: Registry, tmp_path: Path, home: Home
) -> None:
    user, password = registry.user
    ours = hatchway_login(home, registry.addr, user, password)
    assert ours.returncode == 0, ours.stderr
    reference = make_home(tmp_path, "docker-home")
    theirs = docker_login(reference, registry.addr, user, password)
    assert theirs.returncode == 0, theirs.stderr
    assert "Login Succeeded" in theirs.stdout
    mine, docker = home.config_file.read_text(), reference.config_file.read_text()
    if registry.kind == "token":  # two logins, two refresh tokens
        token = re.compile(r'"identitytoken": "hwr_[^"]+"')
        assert token.search(mine)
        assert token.search(docker)
        mine, docker = token.sub("TOKEN", mine), token.sub("TOKEN", docker)
    assert mine == docker
    assert mode(reference.config_file) == mode(home.config_file) == 0o600


def test_wrong_password_stores_nothing(registry: Registry, home: Home) -> None:
    user, _ = registry.user
    done = hatchway_login(home, registry.addr, user, "not-the-password")
    assert done.returncode == 1
    assert done.stderr == WRONG
    assert done.stdout == ""
    assert not home.config_file.exists()
    existing = '{"auths": {}, "psFormat": "kept"}'
    home.write_config(json.loads(existing))
    before = home.config_file.read_bytes()
    for who in ((user, "nope"), ("nobody", registry.user[1])):
        assert hatchway_login(home, registry.addr, *who).stderr == WRONG
    assert home.config_file.read_bytes() == before


@needs_skopeo
def test_skopeo_reads_what_login_wrote(registry: Registry, home: Home, tmp_path: Path) -> None:
    skopeo = Skopeo(tmp_path / "skopeo")
    anonymous = skopeo.run("inspect", "--tls-verify=false", registry.ref, check=False)
    assert anonymous.returncode != 0
    assert hatchway_login(home, registry.addr, *registry.user).returncode == 0
    found = skopeo.json(
        "inspect", "--authfile", str(home.config_file), "--tls-verify=false", registry.ref
    )
    assert found["Digest"] == registry.digest


def test_logout_removes_and_revokes(registry: Registry, home: Home) -> None:
    home.write_config({"auths": {"other:1": {"auth": b64("o:p")}}, "currentContext": "x"})
    assert hatchway_login(home, registry.addr, *registry.user).returncode == 0
    token = home.config()["auths"][registry.addr].get("identitytoken")
    done = run_hatchway(home, "logout", registry.addr)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Removing login credentials for {registry.addr}\n"
    assert done.stderr == ""
    assert home.config() == {"auths": {"other:1": {"auth": b64("o:p")}}, "currentContext": "x"}
    if registry.kind == "token":
        refresh = httpx.post(
            f"http://{registry.addr}/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "t"},
        )
        assert refresh.status_code == 400
        assert refresh.json()["error"] == "invalid_grant"
    again = run_hatchway(home, "logout", registry.addr)
    assert again.returncode == 0
    assert again.stdout.endswith(f"Not logged in to {registry.addr}\n")


@needs_skopeo
def test_skopeo_login_then_hatchway_logout(registry: Registry, home: Home, tmp_path: Path) -> None:
    """Files written by another tool are read and cleaned the same way."""
    skopeo = Skopeo(tmp_path / "skopeo")
    skopeo.auth_file = home.config_file
    skopeo.env["REGISTRY_AUTH_FILE"] = str(home.config_file)
    home.write_config({"auths": {}})
    skopeo.login(registry.addr, *registry.user)
    assert registry.addr in home.config()["auths"]
    assert run_hatchway(home, "logout", registry.addr).returncode == 0
    assert home.config()["auths"] == {}


def test_registry_auth_uses_the_stored_login(
    registry: Registry, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What push/pull do: credentials found as docker finds them, per registry."""
    assert hatchway_login(home, registry.addr, *registry.user).returncode == 0
    monkeypatch.setenv("DOCKER_CONFIG", str(home.docker_config))
    repo, tag = registry.ref.removeprefix(f"docker://{registry.addr}/").split(":")
    with RegistryClient(registry.addr, RegistryAuth(credentials_lookup())) as client:
        r = client.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == registry.digest
    with RegistryClient(registry.addr, RegistryAuth()) as anonymous:
        assert anonymous.head(f"/v2/{repo}/manifests/{tag}").status_code == 401
