"""Brute-force throttling against a real ``hatchway serve``: parallel guesses, several
workers, and who may be locked out by whom (tokens never; the owner elsewhere, never)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.authkit import (
    HTPASSWD,
    SERVICE,
    add_user,
    create_pat,
    hatchway_cli,
    token_config,
)
from tests.support.server import Server, serving_worker, start_server

PASSWORD = "throttle-Pw-0123"
THRESHOLD = 5  # failures per account and address before the wait (ratelimit.PAIR)
BURST = 150


def token_server(tmp: Path, workers: int = 1) -> Server:
    return start_server(tmp, config=token_config(), workers=workers)


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[Server]:
    server = token_server(tmp_path)
    try:
        add_user(server, "alice", PASSWORD)
        yield server
    finally:
        server.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def token_url(server: Server) -> str:
    return f"{server.url}/auth/token?service={SERVICE}"


def grant(
    server: Server, user: str, password: str, *, local_address: str | None = None
) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(transport=transport, timeout=60) as client:
        return client.get(token_url(server), auth=(user, password))


async def _burst(url: str, authorization: str, count: int) -> Counter[int]:
    """``count`` requests at once, each on a connection of its own."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.get(url, headers={"Authorization": authorization}) for _ in range(count))
        )
    return Counter(r.status_code for r in responses)


def burst(url: str, authorization: str, count: int = BURST) -> Counter[int]:
    return asyncio.run(_burst(url, authorization, count))


# -- counted before the password is checked ---------------------------------------------


def test_parallel_wrong_passwords_in_token_mode(tmp_path: Path) -> None:
    server = token_server(tmp_path, workers=2)
    try:
        add_user(server, "alice", PASSWORD)
        answered = burst(token_url(server), basic("alice", "guess"))
        assert answered[401] <= THRESHOLD, answered
        assert answered[401] + answered[429] == BURST, answered
    finally:
        server.stop()


@pytest.mark.skipif(HTPASSWD is None, reason="htpasswd is not installed (apache2-utils)")
def test_parallel_wrong_passwords_in_basic_mode(tmp_path: Path) -> None:
    """The issue's reproduction: 300 parallel wrong passwords were all checked."""
    assert HTPASSWD is not None
    path = tmp_path / "htpasswd"
    subprocess.run(
        [HTPASSWD, "-B", "-c", "-b", str(path), "alice", PASSWORD], check=True, timeout=30
    )
    config = {
        "version": "0.1",
        "auth": {"htpasswd": {"realm": "test", "path": str(path)}},
        "access": [{"name": "alice", "type": "registry", "action": "*"}],
    }
    server = start_server(tmp_path, config=json.dumps(config), workers=2)
    try:
        answered = burst(server.url + "/v2/", basic("alice", "guess"), 300)
        assert answered[401] <= THRESHOLD, answered
        assert answered[401] + answered[429] == 300, answered
    finally:
        server.stop()


# -- shared by the workers --------------------------------------------------------------


def _connection_on_each_worker(server: Server) -> list[http.client.HTTPConnection]:
    """Two kept-alive connections that two different workers serve."""
    host, port = server.addr.rsplit(":", 1)
    by_worker: dict[int, http.client.HTTPConnection] = {}
    spare = []
    for _ in range(64):
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", "/v2/")
        conn.getresponse().read()
        pid = serving_worker(server, conn.sock.getsockname()[1])
        if pid is not None and pid not in by_worker:
            by_worker[pid] = conn
            if len(by_worker) == 2:
                break
        else:
            spare.append(conn)
    for conn in spare:
        conn.close()
    assert len(by_worker) == 2, "the kernel gave every connection to one worker"
    return list(by_worker.values())


def _login(conn: http.client.HTTPConnection, password: str) -> int:
    conn.request(
        "GET", f"/auth/token?service={SERVICE}", headers={"Authorization": basic("alice", password)}
    )
    response = conn.getresponse()
    response.read()
    return response.status


def test_workers_share_the_counts(tmp_path: Path) -> None:
    """Failures seen by one worker count in the other: 3 + 2 failures make 5, not 3 and 2."""
    server = token_server(tmp_path, workers=2)
    try:
        add_user(server, "alice", PASSWORD)
        one, two = _connection_on_each_worker(server)
        answered = [_login(one, "guess") for _ in range(3)]
        answered += [_login(two, "guess") for _ in range(2)]
        answered.append(_login(one, "guess"))
        answered.append(_login(two, PASSWORD))
        assert answered == [401] * THRESHOLD + [429, 429], answered
        one.close()
        two.close()
    finally:
        server.stop()


# -- who can lock whom out --------------------------------------------------------------


def lock_out(server: Server, user: str, *, local_address: str | None = None) -> None:
    """Wrong passwords for ``user`` until the server answers 429."""
    for _ in range(THRESHOLD + 2):
        r = grant(server, user, "guess", local_address=local_address)
        if r.status_code == 429:
            return
        assert r.status_code == 401, r.text
    raise AssertionError("never throttled")


def test_password_guesses_do_not_block_tokens(tokens: Server) -> None:
    """A robot's PAT, and a user's PAT and refresh token, keep working while someone
    guesses passwords for the account from the same address."""
    server = tokens
    hatchway_cli(server.data, "user", "add-robot", "ci-bot")
    robot_pat = create_pat(server, "ci-bot", "ci", ["repository:ci/*:pull"])
    alice_pat = create_pat(server, "alice", "laptop", ["repository:alice/*:pull"])
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": PASSWORD,
        "client_id": "e2e",
        "access_type": "offline",
        "service": SERVICE,
    }
    refresh = httpx.post(server.url + "/auth/token", data=form, timeout=60).json()
    # Right after each lock-out (its first wait is 1 s), the tokens still work.
    lock_out(server, "ci-bot")
    r = grant(server, "ci-bot", robot_pat)
    assert r.status_code == 200, r.text
    lock_out(server, "alice")
    # A secret shaped like a token that is none is a password guess: refused.
    assert grant(server, "alice", "hw_" + "A" * 43).status_code == 429
    r = grant(server, "alice", alice_pat)
    assert r.status_code == 200, r.text
    refreshed = {
        "grant_type": "refresh_token",
        "refresh_token": refresh["refresh_token"],
        "client_id": "e2e",
        "service": SERVICE,
    }
    r = httpx.post(server.url + "/auth/token", data=refreshed, timeout=60)
    assert r.status_code == 200, r.text


def test_a_guesser_cannot_lock_the_owner_out(tokens: Server) -> None:
    """Guesses from 127.0.0.2 lock that address out of alice's account, not alice at
    127.0.0.1."""
    server = tokens
    lock_out(server, "alice", local_address="127.0.0.2")
    r = grant(server, "alice", PASSWORD, local_address="127.0.0.2")
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    r = grant(server, "alice", PASSWORD)
    assert r.status_code == 200, r.text
