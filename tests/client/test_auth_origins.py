"""Credentials go only where the registry that was asked sends them.

A registry may redirect a blob GET to storage elsewhere; if that stranger answers 401 with
a realm of its own, the client must not send the registry's password or refresh token
there, nor remember that realm for the registry. And a registry over HTTPS that names a
token service over plain HTTP is refused, unless ``--insecure`` or the registry is on
loopback.

The registry is a real ``hatchway serve`` with its token service; in front of it a scripted
server passes everything through except the GET of one layer, which it redirects to a
second port that answers 401 with a realm on a third: the stranger, which records all it
gets. The HTTPS registry is reached by a name that is not loopback (``registry.test``)
through a CONNECT proxy, so no DNS is involved.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatchway.client.auth import RegistryAuth
from hatchway.client.dockerconfig import Credentials
from hatchway.client.registry import RegistryClient
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, start_token_server
from tests.support.images import Image, make_image, write_oci_layout
from tests.support.layouts import layout_blobs
from tests.support.scripted import Reply, ScriptedServer, Seen, TunnelProxy, forward_to
from tests.support.server import HATCHWAY, Server, start_server
from tests.support.tls import self_signed_cert

pytestmark = pytest.mark.e2e

REPO = "team/app"


def run(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HATCHWAY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def client_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        **extra,
    }


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    return last


def push_as_admin(server_addr: str, image: Image, tmp_path: Path, env: dict[str, str]) -> None:
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1")
    pushed = run(
        "push",
        f"{src}:1",
        f"{server_addr}/{REPO}:1",
        "-u",
        ADMIN,
        "--password-stdin",
        env=env,
        stdin=ADMIN_PASSWORD + "\n",
    )
    assert pushed.returncode == 0, pushed.stderr


# -- a redirect to a stranger ------------------------------------------------------------


@dataclass
class Redirecting:
    registry: Server
    front: ScriptedServer  # the registry as the client sees it
    storage: ScriptedServer  # where one blob is redirected: answers 401
    stranger: ScriptedServer  # the realm storage names: records everything
    image: Image


@pytest.fixture
def redirecting(tmp_path: Path) -> Iterator[Redirecting]:
    (tmp_path / "srv").mkdir()
    registry = start_token_server(tmp_path / "srv")
    image = make_image("origins", layer_sizes=(5000, 70))
    stolen = b'{"token": "stolen", "access_token": "stolen", "refresh_token": "stolen"}'
    stranger = ScriptedServer(lambda seen: Reply(200, {"Content-Type": "application/json"}, stolen))
    challenge = f'Bearer realm="{stranger.url}/token",service="storage"'
    storage = ScriptedServer(lambda seen: Reply(401, {"WWW-Authenticate": challenge}))
    redirected = f"/v2/{REPO}/blobs/{image.layers[0].digest}"
    forward = forward_to(registry.url)

    def front_route(seen: Seen) -> Reply:
        if seen.method == "GET" and seen.path.split("?")[0] == redirected:
            return Reply(307, {"Location": f"{storage.url}/data/{image.layers[0].digest}"})
        return forward(seen)

    front = ScriptedServer(front_route)
    try:
        with stranger, storage, front:
            push_as_admin(registry.addr, image, tmp_path, client_env(tmp_path))
            yield Redirecting(registry, front, storage, stranger, image)
    finally:
        registry.stop()


@pytest.mark.parametrize("credential", ["password", "refresh token"])
def test_a_redirect_targets_realm_gets_no_credential(
    redirecting: Redirecting, tmp_path: Path, credential: str
) -> None:
    env = client_env(tmp_path)
    ref = f"{redirecting.front.addr}/{REPO}:1"
    args = ["pull", ref, str(tmp_path / "dest")]
    if credential == "password":
        pulled = run(*args, "-u", ADMIN, "--password-stdin", env=env, stdin=ADMIN_PASSWORD)
    else:
        login = ["login", "-u", ADMIN, "--password-stdin", redirecting.front.addr]
        logged_in = run(*login, env=env, stdin=ADMIN_PASSWORD)
        assert logged_in.returncode == 0, logged_in.stderr
        stored = json.loads((tmp_path / "docker-config" / "config.json").read_text())
        assert stored["auths"][redirecting.front.addr]["identitytoken"].startswith("hwr_")
        pulled = run(*args, env=env)

    error = one_line_error(pulled)
    assert redirecting.image.layers[0].digest[:19] in error
    assert "401" in error
    assert redirecting.stranger.seen == []
    # The redirect itself carried no credential either (httpx drops it across origins).
    assert [s.method for s in redirecting.storage.seen] == ["GET"]
    assert redirecting.storage.authorizations() == []


def test_a_redirect_targets_realm_is_not_remembered_for_the_registry(
    redirecting: Redirecting,
) -> None:
    auth = RegistryAuth(Credentials(ADMIN, ADMIN_PASSWORD))
    with RegistryClient(redirecting.front.addr, auth) as client:
        blob = client.request("GET", f"/v2/{REPO}/blobs/{redirecting.image.layers[0].digest}")
        assert blob.status_code == 401
        known = auth.challenge_for(client.base_url)
        assert known is not None
        assert known.realm == f"{redirecting.registry.url}/auth/token"
        # The registry's own requests still work, with its own token service.
        config = client.request("GET", f"/v2/{REPO}/blobs/{redirecting.image.config.digest}")
        assert config.status_code == 200
        assert config.content == redirecting.image.config.data
    assert redirecting.stranger.seen == []


# -- a plain-HTTP realm named by an HTTPS registry ----------------------------------------


@dataclass
class PlainRealm:
    registry: Server  # hatchway serve over TLS, its realm set to the relay
    relay: ScriptedServer  # the realm over plain HTTP: passes token requests to the registry
    proxy: TunnelProxy  # reaches the registry as registry.test
    cert: Path
    image: Image


@pytest.fixture
def plain_realm(tmp_path: Path) -> Iterator[PlainRealm]:
    cert, key = self_signed_cert(tmp_path, dns=("registry.test",))
    relay = ScriptedServer(lambda seen: Reply(503))  # routed once the registry is up
    config = {
        "version": "0.1",
        "http": {"tls": {"certificate": str(cert), "key": str(key)}},
        "auth": {"token": {"realm": f"{relay.url}/auth/token"}},
    }
    (tmp_path / "srv").mkdir()
    registry = start_server(
        tmp_path / "srv",
        config=json.dumps(config),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
        scheme="https",
    )
    relay.route = forward_to(registry.url)
    image = make_image("plain-realm", layer_sizes=(3000,))
    try:
        with relay, TunnelProxy(registry.addr) as proxy:
            yield PlainRealm(registry, relay, proxy, cert, image)
    finally:
        registry.stop()


def proxied_env(tmp_path: Path, realm: PlainRealm) -> dict[str, str]:
    return client_env(
        tmp_path,
        HTTPS_PROXY=realm.proxy.url,
        NO_PROXY="127.0.0.1",
        SSL_CERT_FILE=str(realm.cert),
    )


def test_an_https_registrys_plain_http_realm_is_refused(
    plain_realm: PlainRealm, tmp_path: Path
) -> None:
    env = proxied_env(tmp_path, plain_realm)
    for args in (
        ["pull", f"registry.test/{REPO}:1", str(tmp_path / "dest")],
        ["login", "registry.test"],
    ):
        result = run(*args, "-u", ADMIN, "--password-stdin", env=env, stdin=ADMIN_PASSWORD)
        error = one_line_error(result)
        assert "plain HTTP" in error
        assert "--insecure" in error
        assert ADMIN_PASSWORD not in result.stderr
    assert plain_realm.proxy.asked  # the registry was reached, by its name
    assert plain_realm.relay.seen == []


def test_a_plain_http_realm_is_allowed_on_loopback_and_with_insecure(
    plain_realm: PlainRealm, tmp_path: Path
) -> None:
    env = proxied_env(tmp_path, plain_realm)
    # The registry's host is loopback: its plain-HTTP realm is on this machine too.
    push_as_admin(plain_realm.registry.addr, plain_realm.image, tmp_path, env)
    assert any(s.path.startswith("/auth/token") for s in plain_realm.relay.seen)

    dest = tmp_path / "dest"
    pulled = run(
        "pull",
        f"registry.test/{REPO}:1",
        str(dest),
        "--insecure",
        "-u",
        ADMIN,
        "--password-stdin",
        env=env,
        stdin=ADMIN_PASSWORD,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert layout_blobs(dest) == layout_blobs(tmp_path / "src")
