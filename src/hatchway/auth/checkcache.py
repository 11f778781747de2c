"""A short-lived memory of yes/no answers that cost a database query (is this access
token revoked? is this account disabled?), so the registry does not ask the database on
every request.

An answer is kept for :attr:`CheckCache.ttl` seconds, which bounds how long a revocation
made elsewhere (another replica, ``hatchway token revoke``) goes unseen. :meth:`clear`
forgets everything at once: with Redis, every process clears its caches when any process
announces a revocation (``shared/revocations.py``), and the bound only matters while that
announcement cannot arrive. A lookup that began before a :meth:`clear` does not store its
(possibly stale) answer afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_TTL = 5.0
_SIZE = 10_000


class CheckCache:
    def __init__(self, ttl: Callable[[], float] | float = DEFAULT_TTL, size: int = _SIZE) -> None:
        self._ttl = ttl if callable(ttl) else (lambda: float(ttl))
        self._size = size
        self._answers: dict[str, tuple[float, bool]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def ttl(self) -> float:
        return self._ttl()

    def answer(self, key: str, compute: Callable[[], bool]) -> bool:
        """The remembered answer for ``key``, or ``compute()``'s (then remembered)."""
        now = time.monotonic()
        hit = self._answers.get(key)
        if hit is not None and now - hit[0] < self._ttl():
            return hit[1]
        generation = self._generation
        value = compute()
        with self._lock:
            if generation == self._generation:
                if len(self._answers) >= self._size:
                    self._answers.clear()
                self._answers[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._answers.clear()
