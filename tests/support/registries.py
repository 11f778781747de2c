"""Registries for the client tests, each with one image: hatchway's token service,
hatchway with htpasswd, and Debian's docker-registry (CNCF distribution 2.8)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from hatchway.client.auth import RegistryAuth
from hatchway.client.dockerconfig import Credentials
from tests.support.authkit import ADMIN, ADMIN_PASSWORD
from tests.support.images import make_image
from tests.support.oci import push_manifest
from tests.support.server import free_port, start_server

DISTRIBUTION = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")


def htpasswd_file(path: Path, *users: tuple[str, str]) -> Path:
    assert HTPASSWD is not None
    for i, (user, password) in enumerate(users):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            [HTPASSWD, "-B", "-b", *create, str(path), user, password],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return path


@dataclass
class Distribution:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def addr(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_distribution(tmp: Path, htpasswd: Path, realm: str = "test-realm") -> Distribution:
    """Debian's docker-registry with ``auth: {htpasswd: {realm, path}}`` on 127.0.0.1."""
    assert DISTRIBUTION is not None
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "dist-data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
        "auth": {"htpasswd": {"realm": realm, "path": str(htpasswd)}},
    }
    config_path = tmp / "dist-config.yml"
    config_path.write_text(json.dumps(config))
    log = open(tmp / "dist.log", "wb")  # noqa: SIM115 - the child keeps writing to it
    process = subprocess.Popen(
        [DISTRIBUTION, "serve", str(config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((tmp / "dist.log").read_text())
        try:
            if httpx.get(url + "/v2/", timeout=1).status_code == 401:
                return Distribution(url, process)
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"docker-registry did not start: {(tmp / 'dist.log').read_text()}")


# -- registries with one image each, for the CLI tests ----------------------------------

ALICE = ("alice", "alice-Pw-0123")
DORA = ("dora", "dora-Pw-4567")
IMAGE_REPO = {"token": "admin/app", "htpasswd": "alice/app", "distribution": "dora/app"}


@dataclass
class Registry:
    """A running registry of one ``kind``, its user, and an image at ``ref``."""

    kind: str
    addr: str
    user: tuple[str, str]
    ref: str
    digest: str
    stop: Callable[[], object] | None


def push_blob_session(client: httpx.Client, repo: str, data: bytes) -> None:
    """POST then PUT ``?digest=``: the upload every registry takes (distribution 2.8
    does not finish a monolithic ``POST ?digest=``)."""
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, (r.status_code, r.text)
    location = r.request.url.join(r.headers["Location"])
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = client.put(location.copy_add_param("digest", digest), content=data)
    assert r.status_code == 201, (r.status_code, r.text)


def seed_registry(kind: str, url: str, user: tuple[str, str], auth: httpx.Auth) -> Registry:
    """Push one small image with ``auth`` and describe the registry."""
    image = make_image(kind)
    repo = IMAGE_REPO[kind]
    with httpx.Client(base_url=url, auth=auth, timeout=30) as client:
        for b in (image.config, *image.layers):
            push_blob_session(client, repo, b.data)
        r = push_manifest(client, repo, "1", image.manifest.data)
        assert r.status_code == 201, (r.status_code, r.text)
    addr = url.split("://", 1)[1]
    return Registry(kind, addr, user, f"docker://{addr}/{repo}:1", image.manifest.digest, None)


def start_registry(kind: str, tmp: Path) -> Registry:
    """``token``: hatchway's embedded token service; ``htpasswd``: hatchway in Basic mode;
    ``distribution``: Debian's docker-registry with htpasswd."""
    if kind == "token":
        server = start_server(
            tmp, embedded_defaults=True, env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
        )
        auth: httpx.Auth = RegistryAuth(Credentials(ADMIN, ADMIN_PASSWORD))
        return _seeded(kind, server.url, (ADMIN, ADMIN_PASSWORD), auth, server.stop)
    if kind == "htpasswd":
        path = htpasswd_file(tmp / "htpasswd", ALICE)
        config = {
            "version": "0.1",
            "auth": {"htpasswd": {"realm": "hatchway-test", "path": str(path)}},
            "access": [{"name": "alice", "repository": "alice/*", "action": "*"}],
        }
        server = start_server(tmp, config=json.dumps(config))
        return _seeded(kind, server.url, ALICE, httpx.BasicAuth(*ALICE), server.stop)
    dist = start_distribution(tmp, htpasswd_file(tmp / "htpasswd", DORA))
    return _seeded(kind, dist.url, DORA, httpx.BasicAuth(*DORA), dist.stop)


def _seeded(
    kind: str, url: str, user: tuple[str, str], auth: httpx.Auth, stop: Callable[[], object]
) -> Registry:
    try:
        registry = seed_registry(kind, url, user, auth)
    except BaseException:
        stop()
        raise
    registry.stop = stop
    return registry
