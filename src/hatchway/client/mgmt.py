"""A small client of a hatchway server's management API (``/api/v1``), signed in with
what ``hatchway login`` stored for that server.

``hatchway login`` keeps a refresh token (docker's ``identitytoken``) when the registry has
a token service, else the password; the API takes the first as ``Authorization: Bearer``
and the second as HTTP Basic. The scheme (https, or http on loopback and with
``--insecure``) is found as for the registry calls, by probing ``/v2/``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from hatchway.client.credstore import credentials_lookup
from hatchway.client.dockerconfig import DockerConfig, normalize_server
from hatchway.client.registry import RegistryClient, RegistryClientError

API = "/api/v1"


class ApiCallError(Exception):
    """The API refused or could not be reached: one line for the user, never a secret."""


def _authorization(server: str, config: DockerConfig | None) -> str:
    key = normalize_server(server)
    found = credentials_lookup(config or DockerConfig.load())(key)
    if found is None or not (found.identity_token or found.password):
        raise ApiCallError(f"not logged in to {key}: run `hatchway login {key}` first")
    if found.identity_token:
        return f"Bearer {found.identity_token}"
    raw = f"{found.username}:{found.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _message(response: httpx.Response) -> str:
    try:
        item = response.json()["errors"][0]
        text = f"{item['message']} ({item['code']})"
    except (ValueError, KeyError, IndexError, TypeError):
        text = response.reason_phrase or "error"
    if response.status_code == 401:
        text += "; log in again with `hatchway login`"
    return f"{response.status_code}: {text}"


class ManagementClient:
    """``with ManagementClient("registry.example.com") as api: api.call("GET", "/me")``."""

    def __init__(
        self, server: str, *, insecure: bool = False, config: DockerConfig | None = None
    ) -> None:
        self._authorization = _authorization(server, config)
        self._registry = RegistryClient(server, insecure=insecure)

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._registry.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer (None for 204); ApiCallError for any error answer."""
        headers = {"Authorization": self._authorization, "Accept": "application/json"}
        try:
            response = self._registry.request(method, API + path, headers=headers, json=body)
        except RegistryClientError as exc:
            raise ApiCallError(str(exc)) from None
        if response.status_code == 404 and not response.headers.get("Content-Type", "").startswith(
            "application/json"
        ):
            raise ApiCallError("this registry has no management API (/api/v1)")
        if response.status_code >= 400:
            raise ApiCallError(_message(response))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiCallError("the registry answered with something other than JSON") from None
