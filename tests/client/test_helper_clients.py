"""Real clients use ``docker-credential-hatchway`` against a real ``hatchway serve`` (token
auth, embedded defaults): skopeo and podman through ``credHelpers`` in their auth file, the
docker CLI (no engine running) through ``credsStore`` or ``credHelpers``."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.authkit import Skopeo, stderr
from tests.support.credhelper import BIN_DIR, Helper, files_containing
from tests.support.images import Image, make_image, write_oci_layout
from tests.support.server import Server, start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]

ADMIN_PASSWORD = "admin-Helper-e2e-Pw-7"
REPO = "admin/helper"
PATH = f"{BIN_DIR}:/usr/local/bin:/usr/bin:/bin"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Image]]:
    """A secure-by-default server with ``admin/helper:1.0`` pushed (skopeo --dest-creds)."""
    tmp = tmp_path_factory.mktemp("helper-clients")
    server = start_server(
        tmp, embedded_defaults=True, env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    try:
        image = make_image("credential-helper", layer_sizes=(30_000, 500))
        write_oci_layout(tmp / "layout", image, tag="1.0")
        pusher = Skopeo(tmp / "pusher")
        pusher.run(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"admin:{ADMIN_PASSWORD}",
            f"oci:{tmp / 'layout'}:1.0",
            f"docker://{server.addr}/{REPO}:1.0",
        )
        yield server, image
    finally:
        server.stop()


def test_skopeo_login_push_inspect_logout(registry: tuple[Server, Image], tmp_path: Path) -> None:
    server, image = registry
    skopeo = Skopeo(tmp_path / "skopeo")
    skopeo.env.update(PATH=PATH, HATCHWAY_CREDENTIALS_BACKEND="file")
    helper = Helper(skopeo.home, XDG_CONFIG_HOME=skopeo.env["XDG_CONFIG_HOME"])
    auth = {"auths": {}, "credHelpers": {server.addr: "hatchway"}}
    skopeo.auth_file.write_text(json.dumps(auth))
    authfile = str(skopeo.auth_file)

    result = skopeo.run(
        "login",
        "--tls-verify=false",
        "--authfile",
        authfile,
        "-u",
        "admin",
        "--password-stdin",
        server.addr,
        stdin=(ADMIN_PASSWORD + "\n").encode(),
    )
    assert b"Login Succeeded" in result.stdout
    assert helper.list() == {server.addr: "admin"}
    assert helper.get(server.addr)["Secret"] == ADMIN_PASSWORD
    assert json.loads(skopeo.auth_file.read_text()) == auth  # nothing written there
    assert files_containing(skopeo.home, ADMIN_PASSWORD.encode()) == []

    # Push and pull with the stored login only.
    ref = f"docker://{server.addr}/admin/skopeo-helper:1.0"
    write_oci_layout(tmp_path / "layout", image, tag="1.0")
    skopeo.push(tmp_path / "layout", "1.0", ref)
    info = skopeo.json("inspect", "--tls-verify=false", "--authfile", authfile, ref)
    assert info["Digest"] == image.manifest.digest
    info = skopeo.json("inspect", "--tls-verify=false", f"docker://{server.addr}/{REPO}:1.0")
    assert info["Layers"] == [layer.digest for layer in image.layers]

    skopeo.run("logout", "--authfile", authfile, server.addr)
    assert helper.list() == {}
    denied = skopeo.run("inspect", "--tls-verify=false", ref, check=False)
    assert denied.returncode != 0
    assert "unauthorized" in stderr(denied).lower() or "denied" in stderr(denied).lower()


def docker(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI is not installed")
@pytest.mark.parametrize("style", ["credsStore", "credHelpers"])
def test_docker_login_manifest_inspect_logout(
    registry: tuple[Server, Image], tmp_path: Path, style: str
) -> None:
    """With no engine, ``docker login`` logs in client-side; hatchway's token service hands
    out a refresh token, so docker stores an identity token (Username ``<token>``)."""
    server, image = registry
    helper = Helper(tmp_path / "home")
    config_dir = Path(helper.env["DOCKER_CONFIG"])
    config_dir.mkdir()
    setting = "hatchway" if style == "credsStore" else {server.addr: "hatchway"}
    (config_dir / "config.json").write_text(json.dumps({style: setting}))
    env = {**helper.env, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}

    login = docker(
        env, "login", "-u", "admin", "--password-stdin", server.addr, stdin=ADMIN_PASSWORD
    )
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    assert helper.list() == {server.addr: "<token>"}
    stored = helper.get(server.addr)
    assert stored["Username"] == "<token>"
    assert stored["Secret"]
    assert stored["Secret"] != ADMIN_PASSWORD
    for needle in (ADMIN_PASSWORD, stored["Secret"]):
        assert files_containing(helper.home, needle.encode()) == []
    config = json.loads((config_dir / "config.json").read_text())
    assert config[style] == setting
    assert config.get("auths", {}).get(server.addr, {}) == {}  # at most an empty marker

    # The identity token is used for real: a refresh-token grant, then the manifest.
    inspect = docker(env, "manifest", "inspect", "--insecure", f"{server.addr}/{REPO}:1.0")
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout) == json.loads(image.manifest.data)

    logout = docker(env, "logout", server.addr)
    assert logout.returncode == 0, logout.stderr
    assert helper.list() == {}
    assert server.addr not in json.loads((config_dir / "config.json").read_text()).get("auths", {})
    denied = docker(env, "manifest", "inspect", "--insecure", f"{server.addr}/{REPO}:1.0")
    assert denied.returncode != 0


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_login_get_login_logout(
    registry: tuple[Server, Image], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server, _ = registry
    helper = Helper(tmp_path / "home", XDG_RUNTIME_DIR=str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "registries.conf").write_text("")
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {}, "credHelpers": {server.addr: "hatchway"}}))
    env = {**helper.env, "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "registries.conf")}
    # podman refuses a runroot path over 50 characters, so it goes in a short temp dir.
    runroot = Path(tempfile.mkdtemp(prefix="hw-podman-"))
    request.addfinalizer(lambda: shutil.rmtree(runroot, ignore_errors=True))
    base = ["podman", "--root", str(tmp_path / "root"), "--runroot", str(runroot)]

    def podman(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    login = podman(
        "login",
        "--tls-verify=false",
        "--authfile",
        str(authfile),
        "-u",
        "admin",
        "--password-stdin",
        server.addr,
        stdin=ADMIN_PASSWORD + "\n",
    )
    assert login.returncode == 0, login.stderr
    assert helper.list() == {server.addr: "admin"}
    got = podman("login", "--get-login", "--authfile", str(authfile), server.addr)
    assert (got.returncode, got.stdout.strip()) == (0, "admin"), got.stderr
    assert files_containing(helper.home, ADMIN_PASSWORD.encode()) == []

    logout = podman("logout", "--authfile", str(authfile), server.addr)
    assert logout.returncode == 0, logout.stderr
    assert helper.list() == {}
