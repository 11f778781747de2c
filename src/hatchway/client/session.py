"""One HTTP client per registry, the retry policy, and registry errors as exceptions.

Transient failures (connection errors, 5xx, 429) are retried with exponential backoff;
anything else is the registry's answer and raised as :class:`RegistryError` with the
spec's error code, so callers never parse message text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from hatchway.client.registry import RegistryClient

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

T = TypeVar("T")


class TransferError(Exception):
    """A push or pull that cannot go on; the message is for the user."""


class RegistryError(TransferError):
    """An error answer from the registry, with the spec's code (``MANIFEST_UNKNOWN``…)."""

    def __init__(self, response: httpx.Response, what: str) -> None:
        self.status = response.status_code
        self.code, message = _error_of(response)
        self.response = response
        super().__init__(f"{what}: {self.status} {self.code or ''} {message}".rstrip())


def _error_of(response: httpx.Response) -> tuple[str | None, str]:
    try:
        response.read()
        first = response.json()["errors"][0]
        return str(first.get("code")), str(first.get("message", ""))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, httpx.HTTPError):
        return None, response.reason_phrase


def is_transient(outcome: httpx.Response | BaseException) -> bool:
    if isinstance(outcome, httpx.Response):
        return outcome.status_code in TRANSIENT_STATUS
    return isinstance(outcome, httpx.TransportError)


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries per request; the waits double from ``base`` up to ``cap`` seconds."""

    attempts: int = 8
    base: float = 0.25
    cap: float = 8.0

    def delays(self) -> Iterator[float]:
        for n in range(self.attempts - 1):
            yield min(self.cap, self.base * 2**n)


def retrying(policy: RetryPolicy, send: Callable[[], httpx.Response]) -> httpx.Response:
    """``send`` until it answers with a non-transient status or the attempts run out."""
    delays = policy.delays()
    while True:
        try:
            response = send()
        except httpx.TransportError:
            delay = next(delays, None)
            if delay is None:
                raise
        else:
            if not is_transient(response):
                return response
            delay = next(delays, None)
            if delay is None:
                return response
            response.close()
        time.sleep(delay)


class RateLimit:
    """A shared byte budget per second across every transfer thread (``--limit-rate``)."""

    def __init__(self, per_second: int) -> None:
        self._rate = float(per_second)
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + n / self._rate
        if start > now:
            time.sleep(start - now)


@contextmanager
def open_client(
    registry: str, auth: httpx.Auth | None = None, *, insecure: bool = False
) -> Iterator[httpx.Client]:
    """An ``httpx.Client`` for ``registry`` with ``base_url`` set, the scheme found as
    docker finds it (:class:`RegistryClient`: HTTPS, plain HTTP for loopback or
    ``insecure``), and timeouts long enough for a registry to verify a large blob."""
    with RegistryClient(registry, auth, insecure=insecure) as probe:
        client = probe.http
        client.base_url = httpx.URL(probe.base_url)
        client.timeout = httpx.Timeout(30.0, read=600.0, write=600.0, pool=None)
        yield client


def location_of(response: httpx.Response) -> httpx.URL:
    """The ``Location`` header, resolved against the request it answers."""
    raw = response.headers.get("Location")
    if not raw:
        raise RegistryError(response, "registry sent no Location")
    return response.request.url.join(raw)


def expect(response: httpx.Response, what: str, *ok: int) -> httpx.Response:
    if response.status_code not in ok:
        raise RegistryError(response, what)
    return response


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RegistryError(response, "registry sent invalid JSON") from None
