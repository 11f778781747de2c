"""``http.trustedproxies``: a real nginx in front of ``hatchway serve``, TLS-terminating or
plain; and forwarded headers sent straight to the server, believed only from a trusted peer."""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.support.authkit import (
    SERVICE,
    add_user,
    challenge_of,
    create_pat,
    hatchway_cli,
    token_config,
)
from tests.support.nginx import Nginx, start_nginx
from tests.support.server import Server, start_server
from tests.support.tls import self_signed_cert

PASSWORD = "proxy-Pw-0123"


def proxied_config(trusted: Sequence[str] | None = ("127.0.0.1/32",)) -> str:
    doc = json.loads(token_config())
    if trusted is not None:
        doc["http"] = {"trustedproxies": list(trusted)}
    return json.dumps(doc)


@pytest.fixture
def behind_tls(tmp_path: Path) -> Iterator[tuple[Server, Nginx, ssl.SSLContext]]:
    server = start_server(tmp_path, config=proxied_config())
    cert, key = self_signed_cert(tmp_path)
    try:
        add_user(server, "alice", PASSWORD)
        proxy = start_nginx(tmp_path / "nginx", server.addr, tls=(cert, key))
        try:
            yield server, proxy, ssl.create_default_context(cafile=str(cert))
        finally:
            proxy.stop()
    finally:
        server.stop()


@pytest.fixture
def behind_plain(tmp_path: Path) -> Iterator[tuple[Server, Nginx]]:
    server = start_server(tmp_path, config=proxied_config())
    try:
        add_user(server, "alice", PASSWORD)
        proxy = start_nginx(tmp_path / "nginx", server.addr)
        try:
            yield server, proxy
        finally:
            proxy.stop()
    finally:
        server.stop()


def client_from(address: str, verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127.0.0.0/8 works)."""
    return httpx.Client(
        transport=httpx.HTTPTransport(local_address=address, verify=verify), timeout=60
    )


def logged_addresses(server: Server, path: str, count: int) -> list[str]:
    """The client address of each access-log line for ``path``, once there are ``count``
    (aiohttp writes a line after its response has gone out)."""
    pattern = re.compile(r"hatchway\.access: (\S+) \[[^\]]*\] \"\S+ (\S+) ")
    deadline = time.monotonic() + 10
    while True:
        found = [
            m.group(1)
            for m in map(pattern.search, server.log().splitlines())
            if m and m.group(2).startswith(path)
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_realm_behind_a_tls_proxy_is_https(
    behind_tls: tuple[Server, Nginx, ssl.SSLContext],
) -> None:
    """The default realm is the URL the client used: https through a TLS-terminating
    proxy, so docker sends the password to the token endpoint encrypted."""
    _, proxy, trust = behind_tls
    with client_from("127.0.0.1", trust) as client:
        r = client.get(proxy.url + "/v2/")
        assert r.status_code == 401, r.text
        realm = challenge_of(r).params["realm"]
        assert realm == proxy.url + "/auth/token"
        r = client.get(realm, params={"service": SERVICE}, auth=("alice", PASSWORD))
        assert r.status_code == 200, r.text
        bearer = {"Authorization": "Bearer " + r.json()["token"]}
        assert client.get(proxy.url + "/v2/", headers=bearer).status_code == 200


def test_clients_behind_the_proxy_are_told_apart(
    behind_plain: tuple[Server, Nginx],
) -> None:
    """Throttling, the access log and a PAT's last-used address see the client, not
    nginx: a guesser at 127.0.0.2 locks only itself out of alice's account."""
    server, proxy = behind_plain
    pat = create_pat(server, "alice", "laptop", ["repository:alice/*:pull"])
    url = proxy.url + f"/auth/token?service={SERVICE}"
    with client_from("127.0.0.2") as guesser:
        answered = [guesser.get(url, auth=("alice", "guess")).status_code for _ in range(6)]
        assert answered == [401] * 5 + [429], answered
        assert guesser.get(url, auth=("alice", PASSWORD)).status_code == 429
    with client_from("127.0.0.3") as owner:
        r = owner.get(url, auth=("alice", PASSWORD))
        assert r.status_code == 200, r.text
        assert owner.get(url, auth=("alice", pat)).status_code == 200
    assert logged_addresses(server, "/auth/token", 9) == ["127.0.0.2"] * 7 + ["127.0.0.3"] * 2
    listed = hatchway_cli(server.data, "token", "list", "--user", "alice").stdout
    assert listed.splitlines()[1].split()[-1] == "127.0.0.3", listed


def test_forwarded_headers_count_only_from_a_trusted_peer(tmp_path: Path) -> None:
    server = start_server(tmp_path, config=proxied_config())
    try:
        spoofed = {
            "X-Forwarded-For": "203.0.113.77",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
        }
        # From 127.0.0.2 (not trusted): every header is ignored.
        with client_from("127.0.0.2") as untrusted:
            r = untrusted.get(server.url + "/v2/", headers=spoofed)
            assert challenge_of(r).params["realm"] == server.url + "/auth/token"
            # Rotating the spoofed address does not escape the throttle either.
            url = server.url + f"/auth/token?service={SERVICE}"
            answered = [
                untrusted.get(
                    url, auth=("nobody", "guess"), headers={"X-Forwarded-For": f"198.51.100.{i}"}
                ).status_code
                for i in range(6)
            ]
            assert answered == [401] * 5 + [429], answered
        # From 127.0.0.1 (trusted): believed.
        with client_from("127.0.0.1") as trusted:
            r = trusted.get(server.url + "/v2/", headers=spoofed)
            assert challenge_of(r).params["realm"] == "https://evil.example/auth/token"
        # (start_server's own readiness check was the first, from 127.0.0.1)
        assert logged_addresses(server, "/v2/", 3)[-2:] == ["127.0.0.2", "203.0.113.77"]
    finally:
        server.stop()


def test_without_trusted_proxies_nothing_is_believed(tmp_path: Path) -> None:
    server = start_server(tmp_path, config=proxied_config(trusted=None))
    try:
        host, port = server.addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request(
            "GET",
            "/v2/",
            headers={"X-Forwarded-Proto": "https", "Forwarded": "for=1.2.3.4;proto=https"},
        )
        header = conn.getresponse().getheader("WWW-Authenticate") or ""
        conn.close()
        assert f'realm="{server.url}/auth/token"' in header
        assert set(logged_addresses(server, "/v2/", 2)) == {"127.0.0.1"}
    finally:
        server.stop()
