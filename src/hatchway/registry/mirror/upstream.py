"""A small registry client for the mirror's upstreams (httpx; the server never imports
``hatchway.client``).

Authentication as registries ask for it: a ``401`` with a ``Bearer`` challenge sends the
configured credentials (or none, anonymously) to the challenge's realm for a token scoped
to ``repository:<name>:pull``, cached until it expires; a ``Basic`` challenge gets the
credentials directly. Every failure to reach the upstream or get an answer from it
(refused, timed out, 5xx, 429) is :class:`UpstreamDown`; a 404 is :class:`UpstreamMissing`.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

from hatchway.config.proxy import Upstream
from hatchway.oci import mediatypes as mt
from hatchway.registry.mirror.credentials import Credentials, CredentialSource, HelperFailed

MANIFEST_ACCEPT = ", ".join(
    (
        mt.OCI_INDEX,
        mt.OCI_MANIFEST,
        mt.DOCKER_MANIFEST_LIST,
        mt.DOCKER_MANIFEST,
    )
)
if TYPE_CHECKING:  # httpx is imported when a mirror is configured (worker memory)
    import httpx

_PARAM_RE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


class UpstreamDown(Exception):
    """The upstream did not answer usefully (down, slow, refusing, rate-limited)."""


class UpstreamMissing(Exception):
    """The upstream answered that it does not have it (404)."""


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _PARAM_RE.findall(rest)}


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ratelimit_remaining(header: str | None) -> float | None:
    """``ratelimit-remaining: 76;w=21600`` -> 76."""
    if not header:
        return None
    head = header.split(";", 1)[0].strip()
    try:
        return float(head)
    except ValueError:
        return None


class UpstreamClient:
    def __init__(
        self,
        upstream: Upstream,
        on_error: Callable[[], None] = lambda: None,
        on_ratelimit: Callable[[float], None] = lambda _remaining: None,
    ) -> None:
        self.upstream = upstream
        self._on_error = on_error
        self._on_ratelimit = on_ratelimit
        import httpx

        self._client = httpx.AsyncClient(
            base_url=upstream.base_url,
            timeout=httpx.Timeout(upstream.timeout),
            follow_redirects=True,  # blobs often redirect to a CDN (httpx drops auth there)
            headers={"User-Agent": "hatchway-mirror", "Accept-Encoding": "identity"},
        )
        self._tokens: dict[str, tuple[str, float]] = {}
        self._basic = False  # the upstream asked for Basic
        self._source = CredentialSource(upstream)

    def failed(self) -> None:
        """Count a failure found while reading a response (metrics)."""
        self._on_error()

    async def close(self) -> None:
        await self._client.aclose()

    async def _credentials(self) -> Credentials | None:
        try:
            return await self._source.get()
        except HelperFailed as exc:
            self._on_error()
            raise UpstreamDown(str(exc)) from None

    async def _authorization(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and token[1] > time.monotonic():
            return f"Bearer {token[0]}"
        if not self._basic:
            return None
        creds = await self._credentials()
        if creds is None or creds.identity_token:
            return None
        raw = f"{creds.username}:{creds.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def _fetch_token(self, params: dict[str, str], scope: str) -> None:
        realm = params.get("realm", "")
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamDown("upstream token realm is not an http(s) URL")
        creds = await self._credentials()
        if (
            creds is not None
            and parts.scheme == "http"
            and not self.upstream.insecure
            and not _loopback(parts.hostname)
        ):
            raise UpstreamDown("upstream token realm is plain http: credentials not sent")
        query = {"scope": scope}
        if "service" in params:
            query["service"] = params["service"]
        import httpx  # loaded with the client

        try:
            if creds is not None and creds.identity_token:
                # docker's way with an identity token: the OAuth2 refresh_token grant.
                form = {
                    **query,
                    "grant_type": "refresh_token",
                    "refresh_token": creds.secret,
                    "client_id": "hatchway-mirror",
                }
                response = await self._client.post(realm, data=form)
            else:
                auth = httpx.BasicAuth(creds.username, creds.secret) if creds else None
                response = await self._client.get(realm, params=query, auth=auth)
        except httpx.HTTPError as exc:
            raise UpstreamDown(f"upstream token service: {type(exc).__name__}") from None
        if response.status_code != 200:
            if creds is not None and response.status_code in (400, 401, 403):
                self._source.refused()
            raise UpstreamDown(f"upstream token service answered {response.status_code}")
        try:
            body = response.json()
            token = str(body.get("token") or body["access_token"])
            expires = float(body.get("expires_in") or 60)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UpstreamDown("upstream token service answered no token") from None
        # Renew a little early; registries give at least 60 s.
        self._tokens[scope] = (token, time.monotonic() + max(expires - 10, 5))

    async def send(
        self, method: str, path: str, scope: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """The upstream's response to ``method path`` (streamed: the caller closes it);
        a 2xx or 3xx, else UpstreamMissing (404) or UpstreamDown."""
        import httpx  # loaded with the client

        for attempt in (1, 2):
            request_headers = dict(headers or {})
            authorization = await self._authorization(scope)
            if authorization is not None:
                request_headers["Authorization"] = authorization
            request = self._client.build_request(method, path, headers=request_headers)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                self._on_error()
                raise UpstreamDown(f"upstream unreachable: {type(exc).__name__}") from None
            remaining = ratelimit_remaining(response.headers.get("ratelimit-remaining"))
            if remaining is not None:
                self._on_ratelimit(remaining)
            if response.status_code == 401 and attempt == 1:
                await response.aclose()
                scheme, params = _challenge(response.headers.get("WWW-Authenticate", ""))
                if scheme == "bearer":
                    try:
                        await self._fetch_token(params, scope)
                    except UpstreamDown:
                        self._on_error()
                        raise
                    continue
                if scheme == "basic" and self._source.configured:
                    if self._basic:  # what we sent was refused
                        self._source.refused()
                    self._basic = True
                    continue
            if response.status_code < 400:
                return response
            await response.aclose()
            if response.status_code == 404:
                raise UpstreamMissing(path)
            self._on_error()
            raise UpstreamDown(f"upstream answered {response.status_code}")
        raise AssertionError("unreachable")
