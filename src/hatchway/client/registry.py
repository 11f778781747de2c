"""A small synchronous client for one registry: where it is, and ``/v2/`` requests.

The base URL is found the way docker finds it: HTTPS first; plain HTTP only for a
loopback address (127.0.0.0/8, ::1, localhost) or a registry marked ``insecure``, which
also skips certificate checks. An explicit ``http://`` or ``https://`` prefix is honoured.
"""

from __future__ import annotations

from typing import Any

import httpx

from hatchway.client.auth import USER_AGENT, RegistryAuth, describe_error
from hatchway.client.challenge import is_loopback
from hatchway.client.dockerconfig import DOCKER_HUB, normalize_server

__all__ = ["RegistryClient", "RegistryClientError", "api_host", "is_loopback"]

DOCKER_HUB_API = "registry-1.docker.io"


class RegistryClientError(Exception):
    """The registry cannot be reached or answered with an error (one line, no secret)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api_host(server: str) -> str:
    """The ``host[:port]`` that serves ``/v2/`` for a server key (Docker Hub's differs)."""
    key = normalize_server(server)
    return DOCKER_HUB_API if key == DOCKER_HUB else key


class RegistryClient:
    """``RegistryClient("127.0.0.1:5000", RegistryAuth(creds))``; use as a context manager.

    ``http`` is the underlying ``httpx.Client`` (auth attached) for requests not wrapped
    here; :meth:`url` turns a ``/v2/…`` path into an absolute URL once the scheme is known.
    """

    def __init__(
        self,
        server: str,
        auth: httpx.Auth | None = None,
        *,
        insecure: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.server = normalize_server(server)
        self.host = api_host(server)
        self.insecure = insecure
        self.auth = auth
        if insecure and isinstance(auth, RegistryAuth):
            auth.insecure = True  # --insecure covers the registry's token service too
        explicit = server.split("://", 1)[0].lower() if "://" in server else ""
        if explicit == "http" and not (insecure or is_loopback(self.host)):
            raise RegistryClientError(
                f"plain HTTP to {self.host} needs --insecure (only loopback is allowed without)"
            )
        if explicit in ("http", "https"):
            self._candidates = [f"{explicit}://{self.host}"]
        elif insecure or is_loopback(self.host):
            self._candidates = [f"https://{self.host}", f"http://{self.host}"]
        else:
            self._candidates = [f"https://{self.host}"]
        self._base: str | None = None
        self.http = httpx.Client(
            auth=auth,
            verify=not insecure,
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    @property
    def base_url(self) -> str:
        """``scheme://host``, probing with :meth:`ping` on first use."""
        if self._base is None:
            self.ping().close()
        assert self._base is not None
        return self._base

    def url(self, path: str) -> str:
        return self.base_url + path

    def ping(self, headers: dict[str, str] | None = None) -> httpx.Response:
        """``GET /v2/``, trying each allowed scheme until one answers; the answer as is
        (200, or 401 if the credentials were refused; auth errors raise)."""
        if self._base is not None:
            return self.http.get(self._base + "/v2/", headers=headers)
        first: httpx.TransportError | None = None
        for base in self._candidates:
            try:
                response = self.http.get(base + "/v2/", headers=headers)
            except httpx.TransportError as exc:
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    # It does speak TLS: falling back to plain HTTP would only hide why.
                    raise RegistryClientError(
                        f"cannot reach {self.host}: {_reason(exc)} (--insecure skips the check)"
                    ) from None
                first = first or exc
                continue
            self._base = base
            return response
        assert first is not None
        raise RegistryClientError(f"cannot reach {self.host}: {_reason(first)}") from None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, self.url(path), **kwargs)
        except httpx.TransportError as exc:
            raise RegistryClientError(f"cannot reach {self.host}: {_reason(exc)}") from None

    def head(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("HEAD", path, **kwargs)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET and decode JSON; an error answer raises with the registry's ``code: message``."""
        response = self.request("GET", path, **kwargs)
        if response.status_code >= 400:
            raise RegistryClientError(describe_error(response), response.status_code)
        try:
            return response.json()
        except ValueError:
            raise RegistryClientError(f"{self.host}{path}: the answer is not JSON") from None


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:200]
