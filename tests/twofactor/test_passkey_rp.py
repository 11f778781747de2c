"""The passkey options name the RP ID the browser will check: the host it used, which
behind a proxy listed in ``http.trustedproxies`` is the forwarded one; the same headers from
anyone else change nothing. Also: a malformed or stale registration answer is refused in
the API's error format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mgmt.conftest import API
from tests.support.authkit import ADMIN_PASSWORD, add_user
from tests.support.server import Server, start_server
from tests.twofactor.conftest import PASSWORD

FORWARDED = {"X-Forwarded-Host": "registry.example.com", "X-Forwarded-Proto": "https"}


def start(tmp: Path, trusted: list[str]) -> Server:
    config = {"version": "0.1", "auth": {"token": {}}, "http": {"trustedproxies": trusted}}
    return start_server(
        tmp, config=json.dumps(config), env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    proxied = start(tmp_path_factory.mktemp("proxied"), ["127.0.0.1/32"])
    direct = start(tmp_path_factory.mktemp("direct"), ["192.0.2.0/24"])
    try:
        yield proxied, direct
    finally:
        proxied.stop()
        direct.stop()


def options(server: Server, user: str) -> dict[str, object]:
    r = server.client.post(
        f"{API}/me/twofactor/passkeys/options", auth=(user, PASSWORD), headers=FORWARDED
    )
    assert r.status_code == 200, r.text
    found: dict[str, object] = r.json()["options"]
    return found


def test_rp_id_is_the_forwarded_host_only_behind_a_trusted_proxy(
    servers: tuple[Server, Server],
) -> None:
    proxied, direct = servers
    add_user(proxied, "rp1", PASSWORD)
    add_user(direct, "rp1", PASSWORD)
    behind = options(proxied, "rp1")
    assert behind["rp"] == {"name": "hatchway", "id": "registry.example.com"}
    assert behind["user"]["name"] == "rp1"  # type: ignore[index]
    assert behind["excludeCredentials"] == []
    assert len(str(behind["challenge"])) >= 43  # 32 random bytes, base64url
    assert options(direct, "rp1")["rp"] == {"name": "hatchway", "id": "127.0.0.1"}


def test_bad_registration_answers_are_refused(servers: tuple[Server, Server]) -> None:
    proxied, _ = servers
    add_user(proxied, "rp2", PASSWORD)
    url = f"{API}/me/twofactor/passkeys"
    auth = ("rp2", PASSWORD)
    stale = {
        "id": "x",
        "rawId": "x",
        "type": "public-key",
        "response": {
            "clientDataJSON": "eyJjaGFsbGVuZ2UiOiAibm90LWlzc3VlZCJ9",  # {"challenge": "not-issued"}
            "attestationObject": "AA",
        },
    }
    for body, status, code in (
        ({"name": "k", "credential": {"id": "x"}}, 403, "WRONG_CODE"),
        ({"name": "k", "credential": stale}, 403, "WRONG_CODE"),
        ({"name": "", "credential": stale}, 422, "INVALID_REQUEST"),
        ({"name": "k"}, 422, "INVALID_REQUEST"),
    ):
        r = proxied.client.post(url, json=body, auth=auth)
        assert r.status_code == status, (body, r.text)
        assert r.json()["errors"][0]["code"] == code
    assert proxied.client.get(url, auth=auth).json() == {"passkeys": []}
