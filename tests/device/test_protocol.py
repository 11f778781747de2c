"""The device authorization grant (RFC 8628) against a real ``hatchway serve``: the code
answer, polling (pending, slow_down), approval and denial on the web UI, single use,
expiry, the wrong client, bad fields (OAuth2 error JSON, never a 500), throttling of code
creation and of wrong codes, and the audit trail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.device.support import (
    DEVICE_GRANT,
    USER_CODE,
    Person,
    client,
    new_address,
    poll,
    start,
    start_device_server,
)
from tests.support.authkit import add_user, hatchway_cli, jwt_payload
from tests.support.server import Server

PASSWORD = "device-Pw-0123"
INTERVAL = 1
_names = iter(range(1000))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    found = start_device_server(
        tmp_path_factory.mktemp("device"), interval=INTERVAL, expiration="60s"
    )
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def user(server: Server) -> str:
    name = f"dev{next(_names)}"
    add_user(server, name, PASSWORD)
    return name


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with client(server, new_address()) as made:
        yield made


@pytest.fixture
def person(server: Server, user: str) -> Iterator[Person]:
    made = Person(server, user, PASSWORD, new_address())
    try:
        yield made
    finally:
        made.close()


def oauth_error(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    error: str = response.json()["error"]
    return error


def test_code_answer(server: Server, http: httpx.Client) -> None:
    answer = http.post("/auth/device/code", data={"client_id": "test-cli"})
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert USER_CODE.match(body["user_code"])
    assert body["verification_uri"] == f"{server.url}/ui/device"
    assert body["verification_uri_complete"] == (
        f"{server.url}/ui/device?user_code={body['user_code']}"
    )
    assert body["expires_in"] == 60
    assert body["interval"] == INTERVAL
    again = start(http)
    assert again["device_code"] != body["device_code"]
    assert again["user_code"] != body["user_code"]


def test_verification_uri_follows_the_proxy(server: Server) -> None:
    """Behind a trusted TLS proxy the page is where the browser reaches it, as the realm."""
    with client(server, new_address()) as http:
        answer = http.post(
            "/auth/device/code",
            data={"client_id": "test-cli"},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"},
        )
    assert answer.json()["verification_uri"] == "https://registry.example.com/ui/device"


def test_pending_then_slow_down(http: httpx.Client) -> None:
    started = start(http)
    assert oauth_error(poll(http, started["device_code"])) == "authorization_pending"
    # At once again: faster than the interval.
    assert oauth_error(poll(http, started["device_code"])) == "slow_down"


def test_approve_then_exchange_once(
    server: Server, http: httpx.Client, person: Person, user: str
) -> None:
    started = start(http, scope=f"repository:{user}/app:pull")
    shown = person.enter(started["user_code"])
    assert shown.status_code == 200
    assert "test-cli" in shown.text  # which client asked
    assert "device-tests/1" in shown.text  # with which program
    assert http.headers["X-Forwarded-For"] in shown.text  # from where
    decided = person.decide(started["user_code"])
    assert decided.status_code == 200
    assert "Device approved" in decided.text
    time.sleep(INTERVAL + 0.2)
    granted = poll(http, started["device_code"])
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"].startswith("hwr_")
    assert jwt_payload(body["access_token"])["sub"] == user
    assert body["scope"] == f"repository:{user}/app:pull"  # what the device code asked for
    # The refresh token is a login like a password login's.
    refreshed = http.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "x",
            "scope": f"repository:{user}/app:pull",
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert jwt_payload(refreshed.json()["access_token"])["sub"] == user
    sessions = hatchway_cli(server.data, "session", "list", "--user", user).stdout
    assert "test-cli" in sessions
    # Single use: the code is spent.
    time.sleep(INTERVAL + 0.2)
    assert oauth_error(poll(http, started["device_code"])) == "invalid_grant"
    # And the approval page will not take it again.
    again = person.enter(started["user_code"])
    assert again.status_code == 410


def test_deny(http: httpx.Client, person: Person) -> None:
    started = start(http)
    denied = person.decide(started["user_code"], approve=False)
    assert denied.status_code == 200
    assert "Device denied" in denied.text
    time.sleep(INTERVAL + 0.2)
    assert oauth_error(poll(http, started["device_code"])) == "access_denied"


def test_wrong_client_id(http: httpx.Client, person: Person) -> None:
    started = start(http)
    person.decide(started["user_code"])
    time.sleep(INTERVAL + 0.2)
    wrong = poll(http, started["device_code"], client_id="someone-else")
    assert oauth_error(wrong) == "invalid_grant"
    assert oauth_error(poll(http, started["device_code"], client_id="")) == "invalid_request"
    # The rightful client still gets its token.
    assert poll(http, started["device_code"]).status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": DEVICE_GRANT, "client_id": "test-cli"}, "invalid_request"),
        (
            {"grant_type": DEVICE_GRANT, "device_code": "hwd_nope", "client_id": "c"},
            "invalid_grant",
        ),
        (
            {"grant_type": DEVICE_GRANT, "device_code": "x" * 5000, "client_id": "c"},
            "invalid_grant",
        ),
        (
            {"grant_type": DEVICE_GRANT, "device_code": "a\x00b", "client_id": "c"},
            "invalid_request",
        ),
        (
            {"grant_type": DEVICE_GRANT + "x", "device_code": "hwd_a", "client_id": "c"},
            "unsupported_grant_type",
        ),
    ],
)
def test_bad_grant_fields(http: httpx.Client, form: dict[str, str], error: str) -> None:
    assert oauth_error(http.post("/auth/token", data=form)) == error


def test_bad_code_requests(http: httpx.Client) -> None:
    assert oauth_error(http.post("/auth/device/code", data={})) == "invalid_request"
    assert oauth_error(http.post("/auth/device/code", data={"client_id": "c" * 500})) == (
        "invalid_request"
    )
    repeated = http.post(
        "/auth/device/code",
        content=b"client_id=a&client_id=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert oauth_error(repeated) == "invalid_request"
    as_json = http.post("/auth/device/code", json={"client_id": "c"})
    assert oauth_error(as_json) == "invalid_request"
    assert oauth_error(
        http.post("/auth/device/code", data={"client_id": "c", "scope": "\x01"})
    ) == ("invalid_scope")
    bad_scope = http.post("/auth/device/code", data={"client_id": "c", "scope": "repository:"})
    assert oauth_error(bad_scope) == "invalid_scope"
    assert http.get("/auth/device/code").status_code == 405


def test_wrong_codes_on_the_page_are_throttled(http: httpx.Client, person: Person) -> None:
    started = start(http)
    statuses = [person.enter("BBBB-BBBB").status_code for _ in range(8)]
    assert statuses[:5] == [400] * 5
    assert 429 in statuses[5:]
    assert all(s in (400, 429) for s in statuses)
    # Throttled means throttled: even the right code waits.
    assert person.enter(started["user_code"]).status_code == 429


def test_approval_page_needs_sign_in(server: Server, http: httpx.Client) -> None:
    started = start(http)
    page = http.get(started["verification_uri_complete"])
    # The code moves from the address into a cookie for the page, then sign-in.
    assert page.status_code == 303
    assert page.headers["Location"] == "/ui/device"
    assert http.cookies["hatchway_device_code"] == started["user_code"]
    page = http.get("/ui/device")
    assert page.status_code == 303
    location = urlsplit(page.headers["Location"])
    assert location.path == "/ui/sign-in"
    assert parse_qs(location.query)["next"] == ["/ui/device"]


def test_audit_trail(server: Server, http: httpx.Client, person: Person, user: str) -> None:
    started = start(http)
    person.decide(started["user_code"])
    time.sleep(INTERVAL + 0.2)
    assert poll(http, started["device_code"]).status_code == 200
    denied = start(http)
    person.decide(denied["user_code"], approve=False)
    trail = hatchway_cli(server.data, "audit", "--json").stdout
    for event in ("device.code", "device.approve", "device.deny", "device.exchange"):
        assert event in trail, event
    for secret in (started["device_code"], started["user_code"], denied["user_code"]):
        assert secret not in trail
        assert secret not in server.log()


def test_code_creation_is_rate_limited(http: httpx.Client) -> None:
    for _ in range(20):
        start(http)
    refused = http.post("/auth/device/code", data={"client_id": "test-cli"})
    assert oauth_error(refused, 429) == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1


def test_expiry(tmp_path: Path) -> None:
    server = start_device_server(tmp_path, interval=1, expiration="2s")
    try:
        add_user(server, "late", PASSWORD)
        with client(server, new_address()) as http:
            started = start(http)
            assert started["expires_in"] == 2
            time.sleep(2.5)
            assert oauth_error(poll(http, started["device_code"])) == "expired_token"
            person = Person(server, "late", PASSWORD, new_address())
            try:
                assert person.enter(started["user_code"]).status_code == 410
            finally:
                person.close()
    finally:
        server.stop()


def test_disabled(tmp_path: Path) -> None:
    server = start_device_server(tmp_path, enabled=False)
    try:
        with client(server, new_address()) as http:
            assert http.post("/auth/device/code", data={"client_id": "c"}).status_code == 404
            form = {"grant_type": DEVICE_GRANT, "device_code": "hwd_x", "client_id": "c"}
            assert oauth_error(http.post("/auth/token", data=form)) == "unsupported_grant_type"
    finally:
        server.stop()


def test_account_disabled_after_approval(
    server: Server, http: httpx.Client, person: Person, user: str
) -> None:
    started = start(http)
    person.decide(started["user_code"])
    hatchway_cli(server.data, "user", "disable", user)
    time.sleep(INTERVAL + 0.2)
    assert oauth_error(poll(http, started["device_code"])) == "invalid_grant"
    # Enabled again, the account does not get the spent approval back.
    hatchway_cli(server.data, "user", "enable", user)
    time.sleep(INTERVAL + 0.2)
    assert oauth_error(poll(http, started["device_code"])) == "invalid_grant"


def test_across_workers(tmp_path: Path) -> None:
    """Two workers: codes made, approved, polled and exchanged on whichever worker the
    kernel hands each connection to (the state is the database's, not a worker's)."""
    server = start_device_server(tmp_path, workers=2, interval=1)
    try:
        add_user(server, "wide", PASSWORD)
        person = Person(server, "wide", PASSWORD, new_address())
        try:
            for _ in range(4):
                with client(server, new_address()) as http:  # a new connection each time
                    started = start(http)
                assert person.decide(started["user_code"]).status_code == 200
                time.sleep(INTERVAL + 0.2)
                with client(server, new_address()) as http:
                    assert poll(http, started["device_code"]).status_code == 200
                with client(server, new_address()) as http:
                    spent = poll(http, started["device_code"])
                assert oauth_error(spent) == "invalid_grant"
        finally:
            person.close()
    finally:
        server.stop()
