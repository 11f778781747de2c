"""hatchway trusting another issuer's JWKS URL (``auth.token.jwks``): the issuer here is a
second hatchway, whose ``/auth/jwks.json`` the first fetches over loopback http, which
only ``jwksinsecure: true`` allows."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.authkit import get_token, start_token_server
from tests.support.server import HATCHWAY, Server, free_port, start_server


def external_config(jwks: str, *, insecure: bool) -> str:
    token: dict[str, object] = {
        "realm": "https://auth.example/token",
        "service": "hatchway",
        "jwks": jwks,
    }
    if insecure:
        token["jwksinsecure"] = True
    return json.dumps({"version": "0.1", "auth": {"token": token}})


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_token_server(tmp_path_factory.mktemp("issuer"))
    try:
        yield server
    finally:
        server.stop()


def test_tokens_verified_with_keys_from_a_loopback_jwks_url(issuer: Server, tmp_path: Path) -> None:
    registry = start_server(
        tmp_path, config=external_config(issuer.url + "/auth/jwks.json", insecure=True)
    )
    try:
        token = get_token(issuer, auth=("admin", "admin-e2e-Secret-1"))
        r = httpx.get(
            registry.url + "/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert r.status_code == 200, r.text
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        r = httpx.get(
            registry.url + "/v2/", headers={"Authorization": f"Bearer {forged}"}, timeout=30
        )
        assert r.status_code == 401
    finally:
        registry.stop()


def test_plain_http_jwks_url_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(external_config(f"http://127.0.0.1:{free_port()}/jwks.json", insecure=False))
    done = subprocess.run(
        [HATCHWAY, "serve", "--config", str(config), "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "auth.token" in done.stderr
    assert "http:// is not safe for signing keys: use https://" in done.stderr
