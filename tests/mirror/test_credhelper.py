"""Upstream credentials from a docker credential helper (``credentialhelper: NAME``): a
real ``docker-credential-NAME`` program on the server's PATH, and upstreams that require
auth (hatchway's token service, distribution 2.8 with htpasswd)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.oci import errors, sha256
from tests.support.registries import Registry, start_registry
from tests.support.server import Server, start_server

HELPER = "hwmirrortest"
# A credential helper as docker runs it: ``get`` with the registry on stdin, JSON out.
# It answers from store.json and records each registry it was asked about in asked.log.
_SCRIPT = """#!{python}
import json, pathlib, sys
here = pathlib.Path(__file__).resolve().parent
if sys.argv[1:] != ["get"]:
    sys.exit(2)
server = sys.stdin.read().strip()
with open(here / "asked.log", "a") as log:
    log.write(server + "\\n")
store = json.loads((here / "store.json").read_text())
if server not in store:
    print("credentials not found in native keychain")
    sys.exit(1)
username, secret = store[server]
print(json.dumps({{"ServerURL": server, "Username": username, "Secret": secret}}))
"""


def _helper(directory: Path, store: dict[str, tuple[str, str]]) -> Path:
    directory.mkdir(parents=True)
    program = directory / f"docker-credential-{HELPER}"
    program.write_text(_SCRIPT.format(python=sys.executable))
    program.chmod(0o755)
    (directory / "store.json").write_text(json.dumps(store))
    return directory


def _mirror(tmp_path: Path, remoteurl: str, helper_dir: Path) -> Server:
    config = {
        "version": "0.1",
        "proxy": {
            "upstreams": [
                {
                    "prefix": "remote",
                    "remoteurl": remoteurl,
                    "credentialhelper": HELPER,
                    "timeout": "5s",
                }
            ]
        },
    }
    (tmp_path / "mirror").mkdir(parents=True)
    env = {"PATH": f"{helper_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return start_server(tmp_path / "mirror", config=json.dumps(config), env=env)


def _identity_token(registry: Registry) -> tuple[str, str]:
    """docker's identity token: a refresh token from the upstream's token service."""
    challenge = httpx.get(f"http://{registry.addr}/v2/").headers["WWW-Authenticate"]
    realm = challenge.split('realm="', 1)[1].split('"', 1)[0]
    r = httpx.post(
        realm,
        data={
            "grant_type": "password",
            "username": registry.user[0],
            "password": registry.user[1],
            "access_type": "offline",
            "client_id": "test",
        },
    )
    assert r.status_code == 200, r.text
    return ("<token>", r.json()["refresh_token"])


@pytest.mark.parametrize("kind", ["token", "identity-token", "distribution"])
def test_credentials_from_a_helper_pull_from_an_authenticated_upstream(
    tmp_path: Path, kind: str
) -> None:
    (tmp_path / "upstream").mkdir()
    registry = start_registry("token" if kind == "identity-token" else kind, tmp_path / "upstream")
    try:
        creds = _identity_token(registry) if kind == "identity-token" else registry.user
        helper = _helper(tmp_path / "bin", {registry.addr: creds})
        server = _mirror(tmp_path, f"http://{registry.addr}", helper)
        try:
            repo = registry.ref.split("/", 3)[3].rsplit(":", 1)[0]
            r = server.client.get(f"/v2/remote/{repo}/manifests/1")
            assert r.status_code == 200, r.text
            assert r.headers["Docker-Content-Digest"] == registry.digest
            for layer in json.loads(r.content)["layers"]:
                blob = server.client.get(f"/v2/remote/{repo}/blobs/{layer['digest']}")
                assert blob.status_code == 200
                assert sha256(blob.content) == layer["digest"]
            # The helper was asked about the upstream's HOST:PORT, as docker asks it.
            # Once: the answer is kept, not asked for at every request.
            assert (helper / "asked.log").read_text().split() == [registry.addr]
            assert creds[1] not in server.log()
        finally:
            server.stop()
    finally:
        assert registry.stop is not None
        registry.stop()


def test_a_helper_without_credentials_or_missing_answers_503(tmp_path: Path) -> None:
    (tmp_path / "upstream").mkdir()
    registry = start_registry("distribution", tmp_path / "upstream")
    try:
        helper = _helper(tmp_path / "bin", {"elsewhere.example": ("u", "not-this-secret")})
        server = _mirror(tmp_path, f"http://{registry.addr}", helper)
        try:
            repo = registry.ref.split("/", 3)[3].rsplit(":", 1)[0]
            r = server.client.get(f"/v2/remote/{repo}/manifests/1")
            # Anonymous, refused by the upstream: nothing cached, so 503.
            assert r.status_code == 503, r.text
            assert errors(r) == ["UNAVAILABLE"]
            assert (helper / "asked.log").read_text().split() == [registry.addr]
            assert "not-this-secret" not in server.log()
            # The helper program gone: a clear message, no hang.
            (helper / f"docker-credential-{HELPER}").unlink()
            server.stop()
            server = _mirror(tmp_path / "again", f"http://{registry.addr}", helper)
            r = server.client.get(f"/v2/remote/{repo}/manifests/1")
            assert r.status_code == 503
            assert f"docker-credential-{HELPER} not found" in r.json()["errors"][0]["message"]
        finally:
            server.stop()
    finally:
        assert registry.stop is not None
        registry.stop()
