"""bcrypt hashing and checking, paid once per login and not on every request.

Docker sends Basic credentials to the token endpoint on every grant, so a returning user
would pay bcrypt (~250 ms at cost 12) each time. :class:`PasswordVerifier` remembers a
successful check for ``ttl`` seconds under an HMAC of (username, password) with a key
made fresh per process: the password itself is never kept. An entry counts only while
the stored hash is the one it was checked against, so a password change (even by another
process) ends it at once. A check for an unknown account runs bcrypt on a dummy hash so
it takes as long as a wrong password. Before any bcrypt run, :data:`before_check` is called
if set: the login throttle counts the attempt there (or refuses it), so no password is
ever checked that was not counted first.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

import bcrypt

BCRYPT_MAX_BYTES = 72
DEFAULT_ROUNDS = 12
_BCRYPT_RE = re.compile(r"\$2[abxy]\$(\d\d)\$[./A-Za-z0-9]{53}")

# Set by the login throttle (auth.credentials.ratelimit) for the login under way in this
# thread; it may raise to refuse the attempt before bcrypt runs.
before_check: ContextVar[Callable[[], None] | None] = ContextVar("before_check", default=None)


def hash_password(password: str, rounds: int | None = None) -> str:
    """A bcrypt hash (cost ``DEFAULT_ROUNDS``); refuses what bcrypt would truncate."""
    data = password.encode()
    if not data:
        raise ValueError("the password is empty")
    if len(data) > BCRYPT_MAX_BYTES:
        raise ValueError(f"the password is longer than {BCRYPT_MAX_BYTES} bytes (bcrypt's limit)")
    return bcrypt.hashpw(data, bcrypt.gensalt(rounds or DEFAULT_ROUNDS)).decode()


def bcrypt_cost(hashed: str) -> int | None:
    """The cost of a bcrypt hash, or None when it is not one."""
    found = _BCRYPT_RE.fullmatch(hashed)
    return int(found.group(1)) if found else None


@functools.cache
def dummy_hash(rounds: int) -> bytes:
    """A hash of a random password nobody knows, for checks against unknown accounts."""
    return bcrypt.hashpw(secrets.token_bytes(24), bcrypt.gensalt(rounds))


class PasswordVerifier:
    """Thread-safe bcrypt checks with a bounded cache of recent successes.

    ``truncate`` follows Apache (htpasswd and httpd use only the first 72 bytes); without
    it a longer password simply fails, as :func:`hash_password` never stores one.
    ``checks`` and ``hits`` count bcrypt runs and cache hits (tests, metrics).
    """

    def __init__(
        self,
        *,
        ttl: float = 60.0,
        max_entries: int = 10_000,
        truncate: bool = False,
        dummy_rounds: int = DEFAULT_ROUNDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.truncate = truncate
        self.dummy_rounds = dummy_rounds
        self._clock = clock
        self._key = os.urandom(32)
        self._cache: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.checks = 0
        self.hits = 0

    def verify(self, username: str, password: str, stored: str | None) -> bool:
        """True when ``password`` matches the bcrypt hash ``stored`` (None: no account)."""
        data = password.encode("utf-8", "surrogatepass")
        usable = stored is not None and bcrypt_cost(stored) is not None
        if len(data) > BCRYPT_MAX_BYTES:
            if not self.truncate:
                usable = False
            data = data[:BCRYPT_MAX_BYTES]
        user = username.encode("utf-8", "surrogatepass")
        key = hmac.new(
            self._key, len(user).to_bytes(4, "big") + user + data, hashlib.sha256
        ).digest()
        now = self._clock()
        if usable and stored is not None:
            hit = self._cache.get(key)
            if hit is not None and hit[1] > now and hmac.compare_digest(hit[0], stored):
                with self._lock:
                    self.hits += 1
                return True
        target = stored.encode() if usable and stored is not None else dummy_hash(self.dummy_rounds)
        count_attempt = before_check.get()
        if count_attempt is not None:
            count_attempt()
        with self._lock:
            self.checks += 1
        try:
            ok = bcrypt.checkpw(data, target)
        except ValueError:  # a malformed salt
            ok = False
        if not (ok and usable and stored is not None):
            return False
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._evict(now)
            self._cache[key] = (stored, now + self.ttl)
        return True

    def clear(self) -> None:
        """Forget every cached success (the credential source changed)."""
        with self._lock:
            self._cache.clear()

    def _evict(self, now: float) -> None:
        for k in [k for k, (_, until) in self._cache.items() if until <= now]:
            del self._cache[k]
        while len(self._cache) >= self.max_entries:  # all fresh: drop the oldest
            del self._cache[next(iter(self._cache))]
