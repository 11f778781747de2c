"""The polling side of ``hatchway login --sso`` (``client/device.py``) against a scripted
token service on loopback: the interval is kept, each ``slow_down`` adds 5 seconds, the
grant's fields are sent in the POST body, and time runs out with one line. The sleeps are
recorded, not slept (a fake clock advances with them)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from hatchway.client.device import DeviceStart, device_url, wait
from hatchway.client.login import LoginError
from hatchway.client.registry import RegistryClient
from tests.support.scripted import Reply, ScriptedServer, Seen

JSON = {"Content-Type": "application/json"}


def started(url: str, expires_in: int = 600, interval: int = 2) -> DeviceStart:
    return DeviceStart(
        "hwd_secret",
        "BCDF-GHJK",
        f"{url}/ui/device",
        None,
        expires_in,
        interval,
        f"{url}/auth/token",
        "hatchway",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def scripted(errors: list[str]) -> ScriptedServer:
    answers = iter(errors)

    def route(seen: Seen) -> Reply:
        error = next(answers, "")
        if not error:
            body = {"access_token": "a", "token_type": "Bearer", "refresh_token": "hwr_r"}
            return Reply(200, JSON, json.dumps(body).encode())
        return Reply(400, JSON, json.dumps({"error": error}).encode())

    return ScriptedServer(route)


def test_interval_and_slow_down() -> None:
    clock = Clock()
    with scripted(["authorization_pending", "slow_down", "authorization_pending"]) as server:
        with RegistryClient(server.addr) as client:
            token = wait(client, started(server.url), sleep=clock.sleep, clock=clock)
        assert token == "hwr_r"
        assert clock.slept == [2, 2, 7, 7]
        forms = [parse_qs(s.body.decode()) for s in server.seen]
        assert all(s.method == "POST" and s.path == "/auth/token" for s in server.seen)
        assert forms[0] == {
            "grant_type": ["urn:ietf:params:oauth:grant-type:device_code"],
            "device_code": ["hwd_secret"],
            "client_id": ["hatchway"],
            "service": ["hatchway"],
        }


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("access_denied", "the sign-in was denied in the browser"),
        ("expired_token", "timed out: the sign-in was not approved within 10 minutes"),
        ("invalid_grant", "device login failed: unauthorized"),
    ],
)
def test_refusals_are_one_line(error: str, message: str) -> None:
    clock = Clock()
    server = scripted([error])
    with server, RegistryClient(server.addr) as client, pytest.raises(LoginError) as raised:
        wait(client, started(server.url), sleep=clock.sleep, clock=clock)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    assert "hwd_secret" not in str(raised.value)


def test_gives_up_when_the_code_expires() -> None:
    clock = Clock()
    server = scripted(["authorization_pending"] * 100)
    with server, RegistryClient(server.addr) as client, pytest.raises(LoginError) as raised:
        wait(client, started(server.url, expires_in=9), sleep=clock.sleep, clock=clock)
    assert str(raised.value) == (
        "timed out: the sign-in was not approved within 1 minute; run `hatchway login --sso` again"
    )
    assert clock.slept == [2, 2, 2, 2]  # never polls after the code's end


def test_device_url_sits_beside_the_realm() -> None:
    assert device_url("https://r.example/auth/token") == "https://r.example/auth/device/code"
    assert device_url("https://r.example/x/token?y=1") == "https://r.example/x/device/code"


def test_polls_through_a_load_balancer_without_a_healthy_replica() -> None:
    """nginx answers 502/503/504 in HTML while replicas restart; a 429 without an OAuth
    error is taken as slow_down. The code is still valid, so polling goes on."""
    html = {"Content-Type": "text/html"}
    replies = iter(
        [
            Reply(502, html, b"<html>502 Bad Gateway</html>"),
            Reply(503, html, b"<html>503 Service Temporarily Unavailable</html>"),
            Reply(504, html, b"<html>504 Gateway Time-out</html>"),
            Reply(429, {}, b""),
            Reply(503, JSON, json.dumps({"error": "temporarily_unavailable"}).encode()),
        ]
    )
    done = {"access_token": "a", "token_type": "Bearer", "refresh_token": "hwr_r"}

    def route(seen: Seen) -> Reply:
        return next(replies, Reply(200, JSON, json.dumps(done).encode()))

    clock = Clock()
    with ScriptedServer(route) as server, RegistryClient(server.addr) as client:
        token = wait(client, started(server.url), sleep=clock.sleep, clock=clock)
    assert token == "hwr_r"
    assert clock.slept == [2, 2, 2, 2, 7, 7]


def test_a_server_error_with_an_oauth_error_still_ends_the_login() -> None:
    clock = Clock()
    server = ScriptedServer(
        lambda seen: Reply(503, JSON, json.dumps({"error": "server_error"}).encode())
    )
    with server, RegistryClient(server.addr) as client, pytest.raises(LoginError) as raised:
        wait(client, started(server.url), sleep=clock.sleep, clock=clock)
    assert str(raised.value).startswith("device login failed")
