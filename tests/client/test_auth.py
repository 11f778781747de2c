"""RegistryAuth and RegistryClient against real registries: hatchway's token service
(GET and OAuth2 POST, refresh tokens, insufficient_scope) and distribution's Basic."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hatchway.client.auth import RegistryAuth, RegistryAuthError
from hatchway.client.dockerconfig import DOCKER_HUB, Credentials
from hatchway.client.registry import RegistryClient, RegistryClientError, api_host, is_loopback
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, access_log, get_token, start_token_server
from tests.support.images import make_image
from tests.support.oci import push_image
from tests.support.registries import (
    DISTRIBUTION,
    Distribution,
    htpasswd_file,
    start_distribution,
)
from tests.support.server import Server

ADMIN_CREDS = Credentials(ADMIN, ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_token_server(tmp_path_factory.mktemp("client-auth"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    if DISTRIBUTION is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)")
    tmp = tmp_path_factory.mktemp("client-dist")
    server = start_distribution(tmp, htpasswd_file(tmp / "htpasswd", ("dora", "dora-pw")))
    try:
        yield server
    finally:
        server.stop()


def token_requests(server: Server, since: int) -> list[str]:
    logged_statuses(server, "/v2/")  # let the log catch up with the last request
    return [f"{e.method} {e.status}" for e in access_log(server, "/auth/token")[since:]]


def mark(server: Server) -> int:
    return len(access_log(server, "/auth/token"))


def logged_statuses(server: Server, path: str, settle: float = 5.0) -> list[int]:
    """Statuses the access log shows for ``path``, once it stops growing (it is written
    after the response, so the last line may lag the client by a moment)."""
    deadline = time.monotonic() + settle
    seen = [e.status for e in access_log(server, path)]
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = [e.status for e in access_log(server, path)]
        if now == seen:
            return now
        seen = now
    return seen


def test_push_and_pull_reuse_tokens(registry: Server) -> None:
    auth = RegistryAuth(ADMIN_CREDS)
    start = mark(registry)
    with httpx.Client(base_url=registry.url, auth=auth, timeout=30) as client:
        push_image(client, "admin/reuse", make_image("reuse"), tag="1")
        for _ in range(3):
            r = client.get("/v2/admin/reuse/manifests/1")
            assert r.status_code == 200, r.text
    # One token for push (after the single 401 that taught the realm), one for pull.
    assert token_requests(registry, start) == ["GET 200", "GET 200"]
    assert logged_statuses(registry, "/v2/admin/reuse/").count(401) == 1


def test_insufficient_scope_asks_for_more(registry: Server) -> None:
    auth = RegistryAuth(ADMIN_CREDS)
    with httpx.Client(base_url=registry.url, auth=auth, timeout=30) as client:
        assert client.get("/v2/admin/narrow/tags/list").status_code == 404
        # Plant a pull-only token where the push token would be: the registry answers
        # insufficient_scope and the flow must fetch a wider token and resend.
        narrow = get_token(registry, ["repository:admin/narrow:pull"], auth=(ADMIN, ADMIN_PASSWORD))
        [(realm, service, _)] = list(auth._tokens)
        key = (realm, service, ("repository:admin/narrow:pull,push",))
        auth._tokens[key] = (narrow, time.monotonic() + 600)
        data = b"widen me"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = client.post("/v2/admin/narrow/blobs/uploads/", params={"digest": digest}, content=data)
        assert r.status_code == 201, r.text
        assert auth._tokens[key][0] != narrow
    assert logged_statuses(registry, "/v2/admin/narrow/blobs/uploads/")[-2:] == [401, 201]


def test_streamed_body_carries_the_token_up_front(registry: Server) -> None:
    data = b"streamed " * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = "/v2/admin/stream/blobs/uploads/"

    def body() -> Iterator[bytes]:
        yield data[:100]
        yield data[100:]

    auth = RegistryAuth(ADMIN_CREDS)
    with httpx.Client(base_url=registry.url, auth=auth) as client:
        # Unknown realm: a one-shot body cannot be resent, so the 401 comes back as is.
        r = client.post(path, params={"digest": digest}, content=body())
        assert r.status_code == 401
        r = client.post(path, params={"digest": digest}, content=body())
        assert r.status_code == 201, r.text
        # A token refused mid-push (expired, revoked) is dropped at once, so the caller's
        # resend of the streamed body carries a fresh one.
        [key] = [k for k in auth._tokens if k[2] == ("repository:admin/stream:pull,push",)]
        auth._tokens[key] = ("not-a-jwt", time.monotonic() + 600)
        assert client.post(path, params={"digest": digest}, content=body()).status_code == 401
        r = client.post(path, params={"digest": digest}, content=body())
        assert r.status_code == 201, r.text


def test_offline_login_then_refresh_token(registry: Server) -> None:
    auth = RegistryAuth(ADMIN_CREDS, offline=True)
    with RegistryClient(registry.addr, auth) as client:
        assert client.ping().status_code == 200
    refresh = auth.refresh_token
    assert refresh is not None
    assert refresh.startswith("hwr_")
    start = mark(registry)
    for again in (
        RegistryAuth(Credentials(identity_token=refresh)),
        RegistryAuth(None, refresh_token=refresh),
    ):
        with RegistryClient(registry.addr, again) as client:
            assert client.ping().status_code == 200
            assert client.get_json("/v2/_catalog") is not None
    # The refresh token goes in the OAuth2 POST form; no password is needed or sent.
    assert set(token_requests(registry, start)) == {"POST 200"}
    assert ADMIN_PASSWORD not in registry.log()
    assert refresh not in registry.log()


@pytest.mark.parametrize("offline", [False, True], ids=["get", "oauth-post"])
def test_wrong_password_raises_docker_message(registry: Server, offline: bool) -> None:
    auth = RegistryAuth(Credentials(ADMIN, "not-it"), offline=offline)
    with RegistryClient(registry.addr, auth) as client, pytest.raises(RegistryAuthError) as err:
        client.ping()
    assert str(err.value) == "unauthorized: incorrect username or password"
    assert "not-it" not in repr(err.value)


def test_revoked_refresh_token_is_refused(registry: Server) -> None:
    auth = RegistryAuth(ADMIN_CREDS, offline=True)
    with RegistryClient(registry.addr, auth) as client:
        client.ping()
    assert auth.refresh_token
    r = httpx.post(registry.url + "/auth/revoke", data={"token": auth.refresh_token})
    assert r.status_code == 200
    revoked = RegistryAuth(None, refresh_token=auth.refresh_token)
    with RegistryClient(registry.addr, revoked) as c, pytest.raises(RegistryAuthError) as err:
        c.ping()
    assert str(err.value).startswith("unauthorized: ")


def test_async_client(registry: Server) -> None:
    async def run() -> int:
        auth = RegistryAuth(ADMIN_CREDS)
        async with httpx.AsyncClient(base_url=registry.url, auth=auth) as client:
            await client.get("/v2/")
            return (await client.get("/v2/_catalog")).status_code

    assert asyncio.run(run()) == 200


def test_token_lifetime_is_cached_short_of_expiry(registry: Server) -> None:
    auth = RegistryAuth(ADMIN_CREDS)
    with RegistryClient(registry.addr, auth) as client:
        client.ping()
    [(_, expires)] = auth._tokens.values()
    assert 250 < expires - time.monotonic() <= 270  # expires_in 300, minus 10 %


def test_basic_against_distribution(distribution: Distribution) -> None:
    with RegistryClient(distribution.addr, RegistryAuth(Credentials("dora", "dora-pw"))) as c:
        assert c.ping().status_code == 200
        assert c.get_json("/v2/_catalog") == {"repositories": []}
    with RegistryClient(distribution.addr, RegistryAuth(Credentials("dora", "nope"))) as c:
        assert c.ping().status_code == 401
    with RegistryClient(distribution.addr) as c:
        assert c.ping().status_code == 401
        with pytest.raises(RegistryClientError, match="unauthorized") as err:
            c.get_json("/v2/_catalog")
        assert err.value.status == 401


def test_base_url_and_loopback_rules(registry: Server, tmp_path: Path) -> None:
    with RegistryClient(registry.addr) as client:
        assert client.base_url == registry.url  # https tried first, then plain http
    with RegistryClient(f"localhost:{registry.addr.rsplit(':', 1)[1]}") as client:
        assert client.base_url.startswith("http://localhost:")
    with RegistryClient("https://" + registry.addr) as client, pytest.raises(RegistryClientError):
        client.ping()
    with pytest.raises(RegistryClientError, match="--insecure"):
        RegistryClient("http://registry.example.com")
    assert RegistryClient("registry.example.com")._candidates == ["https://registry.example.com"]
    with RegistryClient("registry.example.com:5000", insecure=True) as client:
        assert client._candidates == [
            "https://registry.example.com:5000",
            "http://registry.example.com:5000",
        ]
    assert api_host(DOCKER_HUB) == "registry-1.docker.io"
    assert api_host("docker.io") == "registry-1.docker.io"
    for host in ("127.0.0.1:5000", "127.9.9.9", "localhost", "[::1]:5000", "::1"):
        assert is_loopback(host), host
    for host in ("10.0.0.1:5000", "example.com", "[2001:db8::1]:1", "localhost.example"):
        assert not is_loopback(host), host
