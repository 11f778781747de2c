"""``hatchway keys retire KID --now`` against a running server: a leaked signing key stops
being trusted within seconds, even for tokens the server has already verified."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.authkit import (
    ADMIN,
    ADMIN_PASSWORD,
    get_token,
    hatchway_cli,
    jwt_header,
    start_token_server,
)


def v2(url: str, token: str) -> int:
    r = httpx.get(url + "/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return r.status_code


def test_retiring_a_leaked_key_now_refuses_its_tokens(tmp_path: Path) -> None:
    server = start_token_server(tmp_path)
    try:
        leaked = get_token(server, auth=(ADMIN, ADMIN_PASSWORD))
        kid = jwt_header(leaked)["kid"]
        assert v2(server.url, leaked) == 200  # verified, and remembered by the gate
        out = hatchway_cli(server.data, "keys", "retire", kid, "--now").stdout
        successor = out.split()[0]
        assert f"{successor} signs from now on, in place of {kid}." in out
        deadline = time.monotonic() + 20  # the server re-lists its keys every second
        while v2(server.url, leaked) != 401:
            assert time.monotonic() < deadline, "the retired key is still trusted"
            time.sleep(0.2)
        fresh = get_token(server, auth=(ADMIN, ADMIN_PASSWORD))
        assert jwt_header(fresh)["kid"] == successor
        assert v2(server.url, fresh) == 200
        listed = hatchway_cli(server.data, "keys", "list").stdout
        assert kid not in listed
    finally:
        server.stop()
