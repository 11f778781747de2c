"""Debian's distribution (docker-registry 2.8) trusting hatchway's token service: its
``rootcertbundle`` is ``hatchway keys cert``, its realm hatchway's ``/auth/token``, and
skopeo logs in at distribution's address and is sent to hatchway for tokens."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    challenge_of,
    get_token,
    hatchway_cli,
    stderr,
)
from tests.support.images import make_image, write_oci_layout
from tests.support.layouts import layout_blobs
from tests.support.server import Server, free_port, start_server

DOCKER_REGISTRY = shutil.which("docker-registry") or (
    "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed"),
    pytest.mark.skipif(
        DOCKER_REGISTRY is None,
        reason="docker-registry is not installed (apt-get install docker-registry)",
    ),
]

ALICE_PASSWORD = "dist-Pw-0123"


@dataclass
class Distribution:
    addr: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_distribution(tmp: Path, hatchway: Server, bundle: Path) -> Distribution:
    assert DOCKER_REGISTRY is not None
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(tmp / "distribution-data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
        "auth": {
            "token": {
                "realm": f"{hatchway.url}/auth/token",
                "service": SERVICE,
                "issuer": "hatchway",
                "rootcertbundle": str(bundle),
            }
        },
    }
    config_path = tmp / "distribution.yml"
    config_path.write_text(json.dumps(config))
    log_path = tmp / "distribution.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [DOCKER_REGISTRY, "serve", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    registry = Distribution(f"127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {registry.log()}")
        try:
            if httpx.get(registry.url + "/v2/", timeout=1).status_code == 401:
                return registry
        except httpx.HTTPError:
            time.sleep(0.05)
    registry.stop()
    raise RuntimeError(f"docker-registry did not start: {registry.log()}")


@dataclass
class Pair:
    hatchway: Server
    distribution: Distribution


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("distribution")
    hatchway = start_server(
        tmp, embedded_defaults=True, env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    distribution: Distribution | None = None
    try:
        add_user(hatchway, "alice", ALICE_PASSWORD)
        bundle = tmp / "bundle.pem"
        bundle.write_text(hatchway_cli(hatchway.data, "keys", "cert").stdout)
        assert bundle.read_text().startswith("-----BEGIN CERTIFICATE-----")
        distribution = start_distribution(tmp, hatchway, bundle)
        yield Pair(hatchway, distribution)
    finally:
        if distribution is not None:
            distribution.stop()
        hatchway.stop()


def test_distribution_challenges_with_hatchways_realm(pair: Pair) -> None:
    r = httpx.get(pair.distribution.url + "/v2/team/app/tags/list")
    assert r.status_code == 401
    found = challenge_of(r)
    assert found.scheme == "Bearer"
    assert found.params["realm"] == pair.hatchway.url + "/auth/token"
    assert found.params["service"] == SERVICE
    assert found.params["scope"] == "repository:team/app:pull"


def test_skopeo_login_and_copy_through_distribution(pair: Pair, tmp_path: Path) -> None:
    addr = pair.distribution.addr
    skopeo = Skopeo(tmp_path / "skopeo")
    assert b"Login Succeeded" in skopeo.login(addr, ADMIN, ADMIN_PASSWORD).stdout
    image = make_image("distribution", layer_sizes=(60_000, 500))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1.0")
    ref = f"docker://{addr}/team/app:1.0"

    skopeo.push(src, "1.0", ref)
    info = skopeo.json("inspect", "--tls-verify=false", ref)
    assert info["Digest"] == image.manifest.digest
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert skopeo.run("inspect", "--tls-verify=false", "--raw", ref).stdout == image.manifest.data
    tags = skopeo.json("list-tags", "--tls-verify=false", f"docker://{addr}/team/app")
    assert tags["Tags"] == ["1.0"]
    out = tmp_path / "out"
    skopeo.pull(ref, out, "1.0")
    assert layout_blobs(out) == layout_blobs(src)

    # The tokens came from hatchway (skopeo followed distribution's realm there) ...
    assert "/auth/token" in pair.hatchway.log()
    # ... and the image lives in distribution, not in hatchway.
    admin = get_token(pair.hatchway, ["repository:team/app:pull"], auth=(ADMIN, ADMIN_PASSWORD))
    headers = {"Authorization": f"Bearer {admin}"}
    r = httpx.get(pair.hatchway.url + "/v2/team/app/tags/list", headers=headers)
    assert r.status_code == 404
    r = httpx.get(pair.distribution.url + "/v2/team/app/tags/list", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["1.0"]


def test_wrong_password_fails_at_distribution(pair: Pair, tmp_path: Path) -> None:
    for user, password in ((ADMIN, "wrong"), ("alice", ADMIN_PASSWORD), ("nobody", "x")):
        skopeo = Skopeo(tmp_path / f"skopeo-{user}")
        result = skopeo.login(pair.distribution.addr, user, password, check=False)
        assert result.returncode != 0, user
        assert "invalid username/password" in stderr(result), stderr(result)


def test_hatchways_access_rules_hold_at_distribution(pair: Pair, tmp_path: Path) -> None:
    addr = pair.distribution.addr
    src = tmp_path / "src"
    write_oci_layout(src, make_image("distribution-alice", layer_sizes=(3000,)), tag="1.0")
    alice = Skopeo(tmp_path / "skopeo-alice")
    alice.login(addr, "alice", ALICE_PASSWORD)
    alice.push(src, "1.0", f"docker://{addr}/alice/app:1.0")
    assert alice.run("inspect", "--tls-verify=false", f"docker://{addr}/alice/app:1.0")

    result = alice.push(src, "1.0", f"docker://{addr}/team/alice-was-here:1.0", check=False)
    assert result.returncode != 0
    assert any(
        word in stderr(result).lower() for word in ("denied", "unauthorized", "authentication")
    ), stderr(result)
    admin = get_token(
        pair.hatchway, ["repository:team/alice-was-here:pull"], auth=(ADMIN, ADMIN_PASSWORD)
    )
    r = httpx.get(
        pair.distribution.url + "/v2/team/alice-was-here/tags/list",
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert r.status_code == 404, r.text

    # Anonymous: hatchway's token carries no access, so distribution refuses the pull.
    anonymous = Skopeo(tmp_path / "skopeo-anonymous")
    result = anonymous.run(
        "inspect", "--tls-verify=false", f"docker://{addr}/alice/app:1.0", check=False
    )
    assert result.returncode != 0

    # A token for one repository does not open another at distribution either.
    token = get_token(pair.hatchway, ["repository:alice/app:pull"], auth=("alice", ALICE_PASSWORD))
    r = httpx.get(
        pair.distribution.url + "/v2/team/app/tags/list",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 401
    assert challenge_of(r).params.get("error") == "insufficient_scope"
