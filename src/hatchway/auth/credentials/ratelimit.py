"""Brute-force throttling of password logins, shared by every worker through the database.

Three counters per password login; each starts making the guesser wait at its threshold
(1, 2, 4 ... s after the last try), and the first two lock once the wait would pass 60 s:

- **pair** (this account from this address): 5 failures, then waits, then locked 15 min.
  It is the one that stops a guesser, and it locks only the guesser's own address out
  of that account: the owner, elsewhere, never notices.
- **address** (every account from this address): 20 failures, same schedule; stops one
  address trying many accounts (password spraying).
- **account** (this account from every address): 100 failures, then waits that grow to
  60 s but never a lock, and it does not apply at an address the account signed in from
  within 30 days. This is OWASP's "device cookie" defence with the address as the device
  (docker clients keep no cookies): a guesser with many addresses gets about one try a
  minute, while the owner at a usual place cannot be locked out at will. A lockout per
  account alone (warehouse's ``user.login`` limit) would let anyone lock anyone out.

An IPv6 client counts as its /64 (one host owns that many addresses). Behind a reverse
proxy, the address is the client's only if ``http.trustedproxies`` names the proxy.

Access tokens (``hw_``) and refresh tokens are never throttled: they are unguessable, so
checking them is no guessing game, and a robot's token keeps working while someone
guesses passwords for its account. A secret shaped like a token that is not one is
checked as a password, and counted like one.

Counting before checking: bcrypt runs only for an attempt already counted.
:class:`~hatchway.auth.credentials.passwords.PasswordVerifier` calls :func:`before_check`
just before bcrypt, and for a login under way here that reserves the attempt in one
atomic transaction (:meth:`LoginAttemptStore.reserve`), which refuses it once a counter
blocks. So N parallel wrong guesses get at most a threshold's worth of bcrypt checks,
across all workers. A success gives the reservation back; a failure keeps it.

The hot path (a returning user whose password the verifier remembers, so no bcrypt) reads
nothing from the database: each worker keeps the set of blocked keys, refreshed from the
store once a second and from its own reservations at once. It must still be consulted
before the password is: a remembered (right) password must not succeed while wrong ones
get 429, or the 429 would tell a guesser which guess was right.

The store is a Protocol (:class:`AttemptStore`): the SQL one shares counts between the
workers of one machine and the replicas of one PostgreSQL; a Redis one can follow.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from hatchway.auth.credentials.passwords import before_check
from hatchway.metadata.attempts import Counter, Reservation, Rule

T = TypeVar("T")

PAIR = Rule(threshold=5)
ADDRESS = Rule(threshold=20)
ACCOUNT = Rule(threshold=100, lockout=None)
KNOWN_FOR = 30 * 86400.0
_SYNC_INTERVAL = 1.0
_PRUNE_INTERVAL = 600.0
_MAX_LOCAL = 10_000


class AttemptStore(Protocol):
    """Counters every worker sees (``metadata.attempts.LoginAttemptStore``)."""

    def reserve(
        self, keys: Sequence[tuple[str, Rule]], now: float, *, gate: bool = True
    ) -> Reservation: ...

    def succeed(self, key: str, release: Sequence[tuple[str, Rule]], now: float) -> None: ...

    def block(self, until: Sequence[tuple[str, float]]) -> None: ...

    def get(self, keys: Sequence[str]) -> dict[str, Counter]: ...

    def blocked(self, now: float) -> list[Counter]: ...

    def prune(self, now: float, *, window: float, known_for: float) -> int: ...


class Throttled(Exception):
    """Too many failed logins: try again in ``wait`` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__("too many failed logins; try again later")
        self.wait = wait


def address_key(address: str | None) -> str:
    """The address as throttling counts it: IPv4 (also IPv4-mapped), or an IPv6 /64."""
    if not address:
        return "-"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


@dataclass(frozen=True, slots=True)
class Keys:
    pair: str
    address: str
    account: str


@dataclass
class _Attempt:
    limiter: Limiter
    keys: Keys
    unguessable: bool
    reserved: list[tuple[str, Rule]] = field(default_factory=list)
    counters: tuple[Counter, ...] = ()

    def reserve(self) -> None:
        """Before bcrypt: count this attempt, or raise :class:`Throttled`. Once per login,
        however many backends check the password."""
        if not self.reserved:
            self.reserved, self.counters = self.limiter.reserve(self.keys)


class Limiter:
    def __init__(
        self,
        store: AttemptStore,
        *,
        pair: Rule = PAIR,
        address: Rule = ADDRESS,
        account: Rule = ACCOUNT,
        known_for: float = KNOWN_FOR,
        sync_interval: float = _SYNC_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.pair_rule = pair
        self.address_rule = address
        self.account_rule = account
        self.known_for = known_for
        self.sync_interval = sync_interval
        self._clock = clock
        # This worker's view of the blocked keys (key -> blocked until), and of the pairs
        # it saw fail (a success without bcrypt clears those too).
        self._blocked: dict[str, float] = {}
        self._failing: set[str] = set()
        self._next_sync = 0.0
        self._next_prune = 0.0
        self._sync_lock = threading.Lock()

    @staticmethod
    @functools.lru_cache(maxsize=8192)  # the hot path: a returning user, same keys again
    def keys(account: str, address: str | None) -> Keys:
        where = address_key(address)
        name = account[:255]
        return Keys(f"pair:{name}|{where}", f"addr:{where}", f"account:{name}")

    def login(
        self,
        account: str,
        address: str | None,
        authenticate: Callable[[], T | None],
        *,
        unguessable: bool = False,
    ) -> T | None:
        """Run ``authenticate`` under the throttle; its result, or :class:`Throttled`.

        ``unguessable``: the secret looks like an access token, so a block does not stop
        it up front (if it is no token after all, its password check is counted and gated).
        """
        keys = self.keys(account, address)
        if not unguessable:
            self.check(keys)
        attempt = _Attempt(self, keys, unguessable)
        token = before_check.set(attempt.reserve)
        try:
            result = authenticate()
        finally:
            before_check.reset(token)
        if result is not None:
            self._succeeded(attempt)
        elif attempt.reserved:
            self._failed(attempt)
        else:
            self._failed_unchecked(keys)
        return result

    def _failed_unchecked(self, keys: Keys) -> None:
        """Refused before any password check (empty or overlong secret or name): no
        guess, so it counts for its address only."""
        now = self._clock()
        reservation = self.store.reserve([(keys.address, self.address_rule)], now, gate=False)
        for counter in reservation.counters:
            self._learn(counter, now)

    def check(self, keys: Keys) -> None:
        """Raise :class:`Throttled` if this worker knows a key of the login is blocked."""
        now = self._clock()
        self._sync(now)
        blocked = self._blocked
        wait = max(blocked.get(keys.pair, 0.0), blocked.get(keys.address, 0.0)) - now
        if wait <= 0 and blocked.get(keys.account, 0.0) > now and not self._known(keys, now):
            wait = blocked[keys.account] - now
        if wait > 0:
            raise Throttled(wait)

    def reserve(self, keys: Keys) -> tuple[list[tuple[str, Rule]], tuple[Counter, ...]]:
        """Count one attempt on the login's keys (atomically, in the store)."""
        now = self._clock()
        counted = [(keys.pair, self.pair_rule), (keys.address, self.address_rule)]
        if not self._known(keys, now):
            counted.append((keys.account, self.account_rule))
        reservation = self.store.reserve(counted, now)
        for counter in reservation.counters:
            self._learn(counter, now)
        if reservation.wait is not None:
            raise Throttled(reservation.wait)
        self._remember_failing(keys.pair)
        return counted, reservation.counters

    def _failed(self, attempt: _Attempt) -> None:
        """The reserved attempt failed: a key it brought to its threshold waits from now
        (the reservation blocked it already, but bcrypt took a while since)."""
        now = self._clock()
        rules = dict(attempt.reserved)
        until = []
        for counter in attempt.counters:
            delay = rules[counter.key].delay(counter.failures)
            if delay > 0:
                until.append((counter.key, now + delay))
                self._learn(Counter(counter.key, blocked_until=now + delay), now)
        if until:
            self.store.block(until)

    def _succeeded(self, attempt: _Attempt) -> None:
        pair = attempt.keys.pair
        if attempt.reserved:
            release = [k for k in attempt.reserved if k[0] != pair]
        elif not attempt.unguessable and pair in self._failing:
            release = []  # remembered password, earlier failures here: clear them too
        else:
            return
        self.store.succeed(pair, release, self._clock())
        self._blocked.pop(pair, None)
        self._failing.discard(pair)
        counted = {c.key: c.failures for c in attempt.counters}
        for key, rule in release:  # unblocked in the store once under the threshold again
            if counted.get(key, 0) - 1 < rule.threshold:
                self._blocked.pop(key, None)

    def _known(self, keys: Keys, now: float) -> bool:
        """Did the account sign in from this address lately (exempt from its count)?"""
        found = self.store.get([keys.pair]).get(keys.pair)
        return found is not None and (found.last_success or 0.0) > now - self.known_for

    def _learn(self, counter: Counter, now: float) -> None:
        if counter.blocked_until > now:
            if len(self._blocked) >= _MAX_LOCAL:
                self._blocked = {k: v for k, v in self._blocked.items() if v > now}
            self._blocked[counter.key] = counter.blocked_until

    def _remember_failing(self, pair: str) -> None:
        if len(self._failing) >= _MAX_LOCAL:
            self._failing.clear()
        self._failing.add(pair)

    def _sync(self, now: float) -> None:
        """Take the blocked keys from the store, at most once per ``sync_interval``."""
        if now < self._next_sync or not self._sync_lock.acquire(blocking=False):
            return
        try:
            if now < self._next_sync:
                return
            self._next_sync = now + self.sync_interval
            self._blocked = {c.key: c.blocked_until for c in self.store.blocked(now)}
            if now >= self._next_prune:
                self._next_prune = now + _PRUNE_INTERVAL
                window = max(
                    r.window for r in (self.pair_rule, self.address_rule, self.account_rule)
                )
                self.store.prune(now, window=window, known_for=self.known_for)
        finally:
            self._sync_lock.release()
