"""Docker registry authentication as an ``httpx.Auth`` flow (httpx's ``DigestAuth`` shape).

request -> 401 + ``WWW-Authenticate`` -> Basic: resend with the password; Bearer: get a
token from the realm (GET with Basic, or the OAuth2 POST form with a refresh token) and
resend. The token requests are yielded through the caller's own client, so TLS settings,
proxies and sync/async all carry over. Tokens are cached per (realm, service, scopes) and
attached up front once a host's challenge is known: a streamed blob upload cannot be sent
twice, so it must carry the right token the first time.

Only a challenge from the origin that was asked is answered, and only that origin's
challenges are remembered: a blob GET that a registry redirects to storage elsewhere may end
in a 401 from there, and that stranger's realm must never see the registry's password or
refresh token. A realm over plain HTTP named by a registry over HTTPS is refused (unless
``insecure``, or the registry is on loopback).

Secrets go only in headers and POST bodies, never in URLs, exceptions or logs.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, NamedTuple

import httpx

from hatchway import __version__
from hatchway.client.challenge import (
    Challenge,
    merge_scopes,
    origin_of,
    pick_challenge,
    plain_realm_refused,
    scopes_for,
)
from hatchway.client.dockerconfig import Credentials, normalize_server

__all__ = ["CredentialSource", "RegistryAuth", "RegistryAuthError", "describe_error"]

CredentialSource = Credentials | Callable[[str], Credentials | None] | None
CLIENT_ID = "hatchway"
MIN_LIFETIME = 60  # the Docker token spec's default and floor for expires_in
USER_AGENT = f"hatchway/{__version__}"
_TokenKey = tuple[str, str, tuple[str, ...]]


class RegistryAuthError(Exception):
    """The token service refused (``unauthorized: incorrect username or password``…)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Step(NamedTuple):
    request: httpx.Request
    read_body: bool = False  # token answers are read; registry answers may be streams


def describe_error(response: httpx.Response) -> str:
    """One line from a registry or token-service error body, in docker's ``code: message``."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    message = ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code", "")).lower()
            message = f"{code}: {errors[0].get('message', '')}".strip(": ")
        elif body.get("error"):
            code = str(body["error"])
            code = "unauthorized" if code == "invalid_grant" else code
            message = f"{code}: {body.get('error_description', '')}".strip(": ")
        elif body.get("details"):
            message = f"unauthorized: {body['details']}"
    if not message and response.status_code == 401:
        message = "unauthorized: authentication required"
    message = message or f"{response.status_code} {response.reason_phrase}"
    return " ".join(message.split())[:300]


def _basic(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class RegistryAuth(httpx.Auth):
    """Credentials for one or more registries; share one instance across a client's
    requests (and threads) so tokens are reused.

    ``credentials`` is fixed or looked up per registry (``lambda server: …``, the server
    key as docker files it). ``offline`` asks the token service for a refresh token
    (docker login does); read it back from :attr:`refresh_token`. ``insecure`` lets an
    HTTPS registry send credentials to a plain-HTTP token service (``--insecure``).
    """

    def __init__(
        self,
        credentials: CredentialSource = None,
        *,
        refresh_token: str | None = None,
        offline: bool = False,
        client_id: str = CLIENT_ID,
        insecure: bool = False,
    ) -> None:
        self._credentials = credentials
        self.insecure = insecure
        self._refresh = refresh_token or None
        self._offline = offline
        self._client_id = client_id
        self._lock = threading.Lock()
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[_TokenKey, tuple[str, float]] = {}
        self._wider: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    @property
    def refresh_token(self) -> str | None:
        """The refresh token given, or the one the token service issued (``offline``)."""
        return self._refresh

    def challenge_for(self, url: str) -> Challenge | None:
        """The last challenge seen from ``url``'s origin (logout reads the realm here)."""
        with self._lock:
            return self._challenges.get(origin_of(url))

    # -- httpx plumbing ---------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        flow = self._flow(request)
        try:
            step = next(flow)
            while True:
                response = yield step.request
                if step.read_body:
                    response.read()
                step = flow.send(response)
        except StopIteration:
            return

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self._flow(request)
        try:
            step = next(flow)
            while True:
                response = yield step.request
                if step.read_body:
                    await response.aread()
                step = flow.send(response)
        except StopIteration:
            return

    # -- the flow ---------------------------------------------------------------------

    def _lookup(self, server: str) -> Credentials | None:
        found = self._credentials(server) if callable(self._credentials) else self._credentials
        return found or None

    def _flow(self, request: httpx.Request) -> Generator[_Step, httpx.Response, None]:
        origin = origin_of(str(request.url))
        server = normalize_server(request.url.netloc.decode("ascii"))
        wanted = scopes_for(request.method, request.url.path, request.url.query)
        had_auth = "Authorization" in request.headers
        sent: _TokenKey | None = None
        with self._lock:
            known = self._challenges.get(origin)
        if known is not None and not had_auth:
            if known.scheme == "bearer":
                with self._lock:
                    learnt = self._wider.get((origin, tuple(wanted)), [])
                sent = (known.realm, known.service, tuple(merge_scopes(wanted, learnt)))
                token = yield from self._token(known, server, list(sent[2]))
                request.headers["Authorization"] = f"Bearer {token}"
            elif (creds := self._lookup(server)) and creds.username:
                request.headers["Authorization"] = _basic(creds)
            had_auth = "Authorization" in request.headers
        response = yield _Step(request)
        if response.status_code != 401:
            return
        if origin_of(str(response.request.url)) != origin:
            return  # a redirect target's 401: not ours to answer, nor to remember
        challenge = pick_challenge(response.headers.get_list("www-authenticate"))
        if challenge is None:
            return
        if challenge.scheme == "bearer":
            refused = plain_realm_refused(origin, challenge.realm, insecure=self.insecure)
            if refused is not None:
                raise RegistryAuthError(refused)
        scopes = merge_scopes(wanted, challenge.scopes)
        with self._lock:
            self._challenges[origin] = challenge
            if challenge.scheme == "bearer":
                # What this kind of request needs beyond the guess from its path, so the
                # next one asks for it up front.
                self._wider[(origin, tuple(wanted))] = scopes
        if sent is not None:
            self._forget(sent)  # expired, revoked, or too narrow: never send it again
        if not isinstance(request.stream, httpx.ByteStream):
            return  # a one-shot body cannot be resent; the caller's resend is authorised
        if challenge.scheme == "basic":
            creds = self._lookup(server)
            if had_auth or creds is None or not creds.username:
                return  # these credentials were refused: the 401 is the answer
            request.headers["Authorization"] = _basic(creds)
        else:
            token = yield from self._token(challenge, server, scopes)
            request.headers["Authorization"] = f"Bearer {token}"
        yield _Step(request)

    # -- tokens -----------------------------------------------------------------------

    def _forget(self, key: _TokenKey) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def _token(
        self, challenge: Challenge, server: str, scopes: list[str]
    ) -> Generator[_Step, httpx.Response, str]:
        key = (challenge.realm, challenge.service, tuple(scopes))
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        creds = self._lookup(server)
        refresh = self._refresh or (creds.identity_token if creds else "")
        has_password = creds is not None and bool(creds.username and creds.password)
        response: httpx.Response | None = None
        if refresh:
            form = {"grant_type": "refresh_token", "refresh_token": refresh}
            response = yield _Step(self._post(challenge, scopes, form), read_body=True)
        elif self._offline and creds is not None and has_password:
            form = {
                "grant_type": "password",
                "username": creds.username,
                "password": creds.password,
                "access_type": "offline",
            }
            response = yield _Step(self._post(challenge, scopes, form), read_body=True)
        if response is None or (response.status_code in (404, 405) and has_password):
            # No OAuth2 form at this realm (or nothing to send to it): the spec's GET.
            get = self._get(challenge, scopes, creds if has_password else None)
            response = yield _Step(get, read_body=True)
        return self._accept(response, key)

    def _post(self, challenge: Challenge, scopes: list[str], form: dict[str, str]) -> httpx.Request:
        data = {**form, "client_id": self._client_id}
        if challenge.service:
            data["service"] = challenge.service
        if scopes:
            data["scope"] = " ".join(scopes)
        return httpx.Request("POST", challenge.realm, data=data, headers={"User-Agent": USER_AGENT})

    def _get(
        self, challenge: Challenge, scopes: list[str], creds: Credentials | None
    ) -> httpx.Request:
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params += [("scope", s) for s in scopes]
        headers = {"User-Agent": USER_AGENT}
        if creds is not None:
            params.append(("account", creds.username))
            headers["Authorization"] = _basic(creds)
        if self._offline:
            params += [("offline_token", "true"), ("client_id", self._client_id)]
        return httpx.Request("GET", challenge.realm, params=params, headers=headers)

    def _accept(self, response: httpx.Response, key: _TokenKey) -> str:
        if response.status_code != 200:
            raise RegistryAuthError(describe_error(response), response.status_code)
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = max(MIN_LIFETIME, int(body.get("expires_in") or MIN_LIFETIME))
        except (ValueError, TypeError, AttributeError):
            raise RegistryAuthError("the token service sent an unreadable answer") from None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError("the token service sent no token")
        expires = time.monotonic() + lifetime - max(5.0, lifetime * 0.1)
        with self._lock:
            self._tokens[key] = (token, expires)
            refresh = body.get("refresh_token")
            if isinstance(refresh, str) and refresh and self._offline:
                self._refresh = refresh
        return token
