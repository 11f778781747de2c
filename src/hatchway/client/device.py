"""``hatchway login --sso``: sign in through the browser with the OAuth 2.0 Device
Authorization Grant (RFC 8628), then store the refresh token as a password login does.

Discovery: ``GET /v2/`` names the token service in its Bearer challenge (``realm``,
hatchway's ``…/auth/token``); the device endpoint sits beside it, ``…/auth/device/code``,
as ``…/auth/revoke`` does. A registry without a Bearer challenge, or whose realm has no
such endpoint (404/405), does not offer device login: a one-line error.

The client asks for a code pair, shows the person the page and the code (the caller
prints them), and polls the token endpoint with ``grant_type=urn:ietf:params:oauth:
grant-type:device_code`` every ``interval`` seconds (5 more after each ``slow_down``)
until the person approves or denies, or the code expires; a 502/503/504 without an
OAuth error (a replica restarting behind the load balancer) is polled through. The
refresh token it gets is proved against ``/v2/`` and filed under the registry exactly as
``hatchway login`` files one (``identitytoken``, the same credential store or helper), so
docker, skopeo and podman use it. The account name for config.json's ``auth`` comes
from ``/api/v1/me``.

Secrets (the device code, the tokens) travel only in POST bodies and headers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from hatchway.client.auth import CLIENT_ID, RegistryAuth, RegistryAuthError, describe_error
from hatchway.client.challenge import pick_challenge, plain_realm_refused
from hatchway.client.credstore import TOKEN_USERNAME, FileStore, store_for
from hatchway.client.dockerconfig import Credentials, DockerConfig, normalize_server
from hatchway.client.login import LoginError, LoginResult
from hatchway.client.registry import RegistryClient, RegistryClientError

__all__ = ["DeviceStart", "device_url", "login_sso"]

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5
# A replica restarting or a load balancer without a healthy backend: the code stays valid.
_TRY_AGAIN = frozenset({502, 503, 504})
_TEXT_FIELDS = ("device_code", "user_code", "verification_uri")


@dataclass(frozen=True, slots=True)
class DeviceStart:
    """The token service's answer to ``POST …/device/code`` (RFC 8628 section 3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    token_url: str
    service: str


def device_url(realm: str) -> str:
    """``…/auth/token`` -> ``…/auth/device/code``."""
    parts = urlsplit(realm)
    path = parts.path.rsplit("/", 1)[0] + "/device/code"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _not_offered(server: str) -> LoginError:
    return LoginError(
        f"{server} does not offer device login (--sso); "
        "log in with a username and password or an access token"
    )


def _parse_start(body: Any, token_url: str, service: str) -> DeviceStart:
    if not isinstance(body, dict) or any(
        not isinstance(body.get(k), str) or not body.get(k) for k in _TEXT_FIELDS
    ):
        raise LoginError("the device endpoint sent an unreadable answer")
    complete = body.get("verification_uri_complete")
    try:
        expires_in = int(body.get("expires_in") or 0)
        interval = int(body.get("interval") or 5)
    except (TypeError, ValueError):
        raise LoginError("the device endpoint sent an unreadable answer") from None
    if expires_in <= 0:
        raise LoginError("the device endpoint sent an unreadable answer")
    return DeviceStart(
        body["device_code"],
        body["user_code"],
        body["verification_uri"],
        complete if isinstance(complete, str) and complete else None,
        expires_in,
        max(1, interval),
        token_url,
        service,
    )


def start(client: RegistryClient, server: str, *, insecure: bool = False) -> DeviceStart:
    """Find the registry's device endpoint and ask it for a code pair."""
    response = client.ping()
    challenge = pick_challenge(response.headers.get_list("www-authenticate"))
    if response.status_code != 401 or challenge is None or challenge.scheme != "bearer":
        raise _not_offered(server)
    refused = plain_realm_refused(client.base_url, challenge.realm, insecure=insecure)
    if refused is not None:
        raise LoginError(refused)
    form = {"client_id": CLIENT_ID}
    answer = client.http.post(device_url(challenge.realm), data=form)
    if answer.status_code in (404, 405):
        raise _not_offered(server)
    if answer.status_code != 200:
        raise LoginError(f"device login refused: {describe_error(answer)}")
    try:
        body = answer.json()
    except ValueError:
        raise LoginError("the device endpoint sent an unreadable answer") from None
    return _parse_start(body, challenge.realm, challenge.service)


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def wait(
    client: RegistryClient,
    started: DeviceStart,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll until approved: the refresh token; LoginError when denied or timed out."""
    deadline = clock() + started.expires_in
    interval = started.interval
    form = {"grant_type": GRANT_TYPE, "device_code": started.device_code, "client_id": CLIENT_ID}
    if started.service:
        form["service"] = started.service
    timed_out = LoginError(
        f"timed out: the sign-in was not approved within {_minutes(started.expires_in)}; "
        "run `hatchway login --sso` again"
    )
    while True:
        if clock() + interval >= deadline:
            raise timed_out
        sleep(interval)
        try:
            answer = client.http.post(started.token_url, data=form)
        except httpx.TransportError:
            continue  # a blip: the code stays valid, try again next interval
        try:
            body: Any = answer.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if answer.status_code == 200 and isinstance(body, dict):
            refresh = body.get("refresh_token")
            if not isinstance(refresh, str) or not refresh:
                raise LoginError("the token service sent no refresh token")
            return refresh
        if error == "authorization_pending":
            continue
        if error == "slow_down" or (answer.status_code == 429 and error is None):
            interval += SLOW_DOWN_STEP
            continue
        if error == "temporarily_unavailable" or (
            answer.status_code in _TRY_AGAIN and error is None
        ):
            continue
        if error == "access_denied":
            raise LoginError("the sign-in was denied in the browser")
        if error == "expired_token":
            raise timed_out
        raise LoginError(f"device login failed: {describe_error(answer)}")


def account_name(client: RegistryClient, refresh: str) -> str:
    """Who approved, from ``/api/v1/me`` (docker's token marker if it cannot say)."""
    try:
        answer = client.http.get(
            client.url("/api/v1/me"),
            headers={"Authorization": f"Bearer {refresh}", "Accept": "application/json"},
        )
        name = answer.json().get("name") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and name and ":" not in name else TOKEN_USERNAME


def _prove(server: str, refresh: str, insecure: bool) -> None:
    """The registry accepts the refresh token (as ``login`` verifies a password)."""
    auth = RegistryAuth(refresh_token=refresh)
    try:
        with RegistryClient(server, auth, insecure=insecure) as client:
            response = client.ping()
    except RegistryAuthError as exc:
        raise LoginError(str(exc)) from None
    except (RegistryClientError, httpx.HTTPError) as exc:
        raise LoginError(str(exc) or type(exc).__name__) from None
    if response.status_code != 200:
        raise LoginError(f"login to {server} failed: {describe_error(response)}")


def login_sso(
    server: str,
    show: Callable[[DeviceStart], None],
    *,
    insecure: bool = False,
    config: DockerConfig | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> LoginResult:
    """Device login: ``show`` tells the person where to go; the refresh token is stored
    where ``login`` would store it (credHelpers > credsStore > config.json)."""
    key = normalize_server(server)
    config = config or DockerConfig.load()
    store = store_for(config, key)  # before anything: a bad config.json fails fast
    try:
        with RegistryClient(server, insecure=insecure) as client:
            started = start(client, server, insecure=insecure)
            show(started)
            refresh = wait(client, started, sleep=sleep)
            username = account_name(client, refresh)
    except (RegistryClientError, httpx.HTTPError) as exc:
        raise LoginError(str(exc) or type(exc).__name__) from None
    _prove(server, refresh, insecure)
    store.store(key, Credentials(username, "", refresh))
    return LoginResult(key, store.description, isinstance(store, FileStore), True)
