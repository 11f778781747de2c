"""A disabled account's PAT stops working for skopeo, a login already stored included, and
works again once the account is enabled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mgmt.adminkit import call, eventually
from tests.mgmt.conftest import PASSWORD, start
from tests.support.authkit import HAVE_SKOPEO, Skopeo, add_user, create_pat, stderr
from tests.support.images import make_image, write_oci_layout
from tests.support.server import Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_SKOPEO, reason="skopeo is not installed"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Its own server: refused logins must not spend the package server's budget."""
    found = start(tmp_path_factory.mktemp("skopeo-admin"))
    try:
        yield found
    finally:
        found.stop()


def test_disabled_account_pat_is_refused_by_the_registry(server: Server, tmp_path: Path) -> None:
    add_user(server, "dora", PASSWORD)
    pat = create_pat(server, "dora", "ci", ["repository:dora/*:pull,push"])
    src = tmp_path / "layout"
    write_oci_layout(src, make_image("admin-skopeo", layer_sizes=(5_000,)), tag="1.0")
    skopeo = Skopeo(tmp_path / "skopeo")
    assert b"Login Succeeded" in skopeo.login(server.addr, "dora", pat).stdout
    skopeo.push(src, "1.0", f"docker://{server.addr}/dora/app:1.0")

    assert call(server, "PATCH", "/accounts/dora", json={"disabled": True}).status_code == 200
    result = skopeo.push(src, "1.0", f"docker://{server.addr}/dora/app:2.0", check=False)
    assert result.returncode != 0, stderr(result)
    again = skopeo.login(server.addr, "dora", pat, check=False)
    assert again.returncode != 0
    assert "invalid username/password" in stderr(again)

    assert call(server, "PATCH", "/accounts/dora", json={"disabled": False}).status_code == 200
    assert eventually(
        lambda: (
            skopeo.push(src, "1.0", f"docker://{server.addr}/dora/app:3.0", check=False).returncode
            == 0
        )
    )
