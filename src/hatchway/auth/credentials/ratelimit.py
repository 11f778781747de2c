"""Brute-force throttling of logins, per account and per client address.

Each key (an account name, a client address) counts failures. From the ``threshold``-th
failure on, the key must wait ``base_delay * 2**n`` seconds before its next try; once that
would exceed ``max_delay`` the key is locked out for ``lockout`` seconds. Counts decay
after ``window`` seconds without a failure; a success clears the account's count (not the
address's: one address may be guessing many accounts).

Counting is in process memory: each worker process counts on its own, so with N workers
an attacker gets up to N times the tries before the same wait (still exponential). The
hot path is two dict lookups and no lock, so throttling costs nothing measurable at
thousands of grants per second. Memory is bounded by ``max_keys``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0


class Limiter:
    def __init__(
        self,
        *,
        account_threshold: int = 5,
        address_threshold: int = 20,
        window: float = 3600.0,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        lockout: float = 900.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_threshold = account_threshold
        self.address_threshold = address_threshold
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lockout = lockout
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, account: str | None, address: str | None) -> float | None:
        """Seconds to wait before trying again (answer 429 with Retry-After), or None."""
        if not self._buckets:
            return None
        now = self._clock()
        wait = 0.0
        for key in self._keys(account, address):
            bucket = self._buckets.get(key)
            if bucket is not None and bucket.blocked_until > now:
                wait = max(wait, bucket.blocked_until - now)
        return wait or None

    def record_failure(self, account: str | None, address: str | None) -> float | None:
        """Count a failed login; returns the wait it imposes now, if any."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(account, address):
                bucket = self._buckets.get(key)
                if bucket is None:
                    if len(self._buckets) >= self.max_keys:
                        self._prune(now)
                    bucket = self._buckets[key] = _Bucket()
                elif now - bucket.last_failure > self.window and bucket.blocked_until <= now:
                    bucket.failures = 0
                bucket.failures += 1
                bucket.last_failure = now
                threshold = self.account_threshold if key[0] == "a" else self.address_threshold
                over = bucket.failures - threshold
                if over >= 0:
                    delay = self.base_delay * 2.0 ** min(over, 64)
                    if delay > self.max_delay:
                        delay = self.lockout
                    bucket.blocked_until = max(bucket.blocked_until, now + delay)
                    wait = max(wait, bucket.blocked_until - now)
        return wait or None

    def record_success(self, account: str | None, address: str | None) -> None:
        if account and ("a", account) in self._buckets:
            with self._lock:
                self._buckets.pop(("a", account), None)

    def _keys(self, account: str | None, address: str | None) -> list[tuple[str, str]]:
        keys = []
        if account:
            keys.append(("a", account))
        if address:
            keys.append(("ip", address))
        return keys

    def _prune(self, now: float) -> None:
        """Drop decayed keys; if all are live, the oldest tenth (attack with many keys)."""
        stale = [
            k
            for k, b in self._buckets.items()
            if b.blocked_until <= now and now - b.last_failure > self.window
        ]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            for key in list(self._buckets)[: max(1, self.max_keys // 10)]:
                del self._buckets[key]
