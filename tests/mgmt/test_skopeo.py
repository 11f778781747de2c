"""A token made with ``POST /api/v1/me/tokens`` is a real registry credential (skopeo
login and push), and ``DELETE /api/v1/me/tokens/{name}`` ends it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mgmt.conftest import API, PASSWORD, Checker
from tests.support.authkit import HAVE_SKOPEO, Skopeo, stderr
from tests.support.images import make_image, write_oci_layout
from tests.support.server import Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed"),
]


def test_api_token_pushes_with_skopeo_until_deleted(
    server: Server, check: Checker, shared: str, tmp_path: Path
) -> None:
    me = (shared, PASSWORD)
    created = check(
        server.client.post(
            f"{API}/me/tokens",
            json={
                "name": "skopeo-ci",
                "scopes": [f"repository:{shared}/*:pull,push"],
                "expires": "1d",
            },
            auth=me,
        ),
        201,
    )
    secret = created["secret"]
    src = tmp_path / "layout"
    write_oci_layout(src, make_image("mgmt-api", layer_sizes=(10_000,)), tag="1.0")

    skopeo = Skopeo(tmp_path / "skopeo")
    assert b"Login Succeeded" in skopeo.login(server.addr, shared, secret).stdout
    ref = f"docker://{server.addr}/{shared}/app:1.0"
    skopeo.push(src, "1.0", ref)
    assert skopeo.run("inspect", "--tls-verify=false", ref, check=False).returncode == 0

    check(server.client.delete(f"{API}/me/tokens/skopeo-ci", auth=me), 204)
    # The stored login no longer works: neither a new login nor a push with the old one.
    result = skopeo.push(src, "1.0", f"docker://{server.addr}/{shared}/app:2.0", check=False)
    assert result.returncode != 0, stderr(result)
    again = skopeo.login(server.addr, shared, secret, check=False)
    assert again.returncode != 0
    assert "invalid username/password" in stderr(again)
