"""An external issuer's JWKS, fetched from its URL off the request path.

Fetches run in a short-lived background thread, never on the event loop: a request
whose ``kid`` is unknown starts one (at most one per ``refetch_interval``; requests that
arrive meanwhile share it) and gets :class:`KeysRefreshing`, which carries the fetch as a
future to wait on without blocking anything else, then tries once more. The URL must be
https; plain http only for a loopback issuer with ``auth.token.jwksinsecure: true``
(tests). Redirects are followed only to URLs that pass the same rule.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from http.client import HTTPMessage
from typing import IO, Any, Generic, TypeVar

from hatchway.auth.tokens.errors import TokenError
from hatchway.auth.tokens.jwk import VerificationKey
from hatchway.config.model import jwks_url_problem

log = logging.getLogger("hatchway.auth.tokens")

JWKS_REFETCH_INTERVAL = 60.0  # an unknown kid refetches the JWKS at most this often
JWKS_TIMEOUT = 10.0  # for the whole fetch, not per read
JWKS_MAX_BYTES = 1 << 20
_CHUNK = 64 * 1024

K = TypeVar("K")
JwksParser = Callable[[object], dict[str, VerificationKey]]


class KeysRefreshing(TokenError):
    """The token's key is unknown, and a JWKS fetch that may bring it is under way."""

    def __init__(self, refresh: Future[None], wait: float) -> None:
        super().__init__("token is signed by an unknown key")
        self.refresh = refresh
        self.wait = wait  # the fetch gives up by then


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL the configuration would have accepted."""

    def __init__(self, insecure: bool) -> None:
        super().__init__()
        self._insecure = insecure

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if jwks_url_problem(newurl, insecure=self._insecure) is not None:
            raise urllib.error.HTTPError(newurl, code, "redirect to a refused URL", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class RemoteKeySet(Generic[K]):
    """kid -> key from a JWKS URL, refreshed in the background.

    ``parse`` turns the JWKS document into keys; a subclass may find the document another
    way (OpenID discovery first) by overriding :meth:`_document`.
    """

    def __init__(
        self,
        url: str,
        parse: Callable[[object], dict[str, K]],
        *,
        insecure: bool = False,
        timeout: float = JWKS_TIMEOUT,
        refetch_interval: float = JWKS_REFETCH_INTERVAL,
    ) -> None:
        problem = jwks_url_problem(url, insecure=insecure)
        if problem is not None:
            raise ValueError(problem)
        self.url = url
        self.timeout = timeout
        self._parse = parse
        self._interval = refetch_interval
        self._insecure = insecure
        self._opener = urllib.request.build_opener(_CheckedRedirects(insecure))
        self.keys: dict[str, K] = {}
        self.fetched_at: float | None = None  # monotonic time of the last good fetch
        self._started: float | None = None
        self._inflight: Future[None] | None = None
        self._lock = threading.Lock()

    def start(self, *, counts: bool = True) -> Future[None]:
        """Fetch now, in the background (at start, so the first requests find the keys).

        ``counts=False``: this fetch leaves the once-per-interval refetch unused, so a
        token naming a key the issuer added just after our start may still fetch once.
        """
        with self._lock:
            future = self._begin(time.monotonic())
            if not counts:
                self._started = None
            return future

    def refetch(self) -> Future[None] | None:
        """The fetch under way, or a new one if the last began ``refetch_interval`` ago;
        None if it is too soon (a flood of made-up kids fetches once a minute at most)."""
        with self._lock:
            if self._inflight is not None and not self._inflight.done():
                return self._inflight
            tick = time.monotonic()
            if self._started is not None and tick - self._started < self._interval:
                return None
            return self._begin(tick)

    def _begin(self, tick: float) -> Future[None]:
        if self._inflight is not None and not self._inflight.done():
            return self._inflight
        self._started = tick
        future: Future[None] = Future()
        future.set_running_or_notify_cancel()  # a waiter giving up cannot cancel it
        self._inflight = future
        threading.Thread(target=self._run, args=(future,), name="jwks-fetch", daemon=True).start()
        return future

    def _run(self, future: Future[None]) -> None:
        try:
            keys = self._fetch()
            if keys is not None:
                self.keys = keys
                self.fetched_at = time.monotonic()
        except Exception:  # a thread must not die silently
            log.exception("JWKS fetch from %s failed", _safe_url(self.url))
        finally:
            future.set_result(None)

    def _fetch(self) -> dict[str, K] | None:
        """The keys at the URL, or None (logged; the last good set stays in force)."""
        try:
            return self._parse(self._document())
        except (OSError, ValueError) as exc:
            log.warning("cannot fetch JWKS from %s: %s", _safe_url(self.url), exc)
            return None

    def _document(self) -> object:
        """The JWKS document (parsed JSON); OSError or ValueError if it cannot be had."""
        return self._get_json(self.url)

    def _get_json(self, url: str) -> object:
        """GET ``url`` as JSON, within the size and time limits."""
        deadline = time.monotonic() + self.timeout
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (scheme checked)
        with self._opener.open(request, timeout=self.timeout) as response:
            body = _read_until(response, deadline)
        if body is None:
            raise ValueError(
                f"larger than {JWKS_MAX_BYTES} bytes or slower than {self.timeout:.0f} s"
            )
        return json.loads(body)


def _read_until(response: Any, deadline: float) -> bytes | None:
    """The body, unless it is too large or still arriving at ``deadline`` (a slow drip)."""
    parts: list[bytes] = []
    size = 0
    while chunk := response.read1(_CHUNK):
        size += len(chunk)
        if size > JWKS_MAX_BYTES or time.monotonic() > deadline:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _safe_url(url: str) -> str:
    """The URL without credentials or query, for logs."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
