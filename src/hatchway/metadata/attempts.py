"""Login attempt counters shared by every worker (and every replica on one database).

One row per key (``auth.credentials.ratelimit`` decides the keys: an account at an
address, an address, an account). A row counts recent failed logins, says until when its
key is blocked, and remembers the last success (what makes an address "known" for an
account). Times are epoch seconds (floats): processes and replicas compare them, and the
arithmetic stays in SQL.

Every change is one short write transaction whose first statement is an UPSERT of the
row: PostgreSQL then holds that row's lock to the commit, and SQLite's ``BEGIN
IMMEDIATE`` holds the database's, so two workers never both read a count and write it
back (no lost updates), and a burst of parallel attempts is admitted one at a time.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hatchway.metadata.engine import Database
from hatchway.metadata.tables import login_attempts

_T = login_attempts.c


@dataclass(frozen=True, slots=True)
class Rule:
    """How a key's failures turn into a wait.

    From the ``threshold``-th failure within ``window`` seconds on, each further attempt
    waits ``base_delay * 2**(failures - threshold)`` seconds after the last one; once that
    would exceed ``max_delay`` the key is locked for ``lockout`` seconds, or, with
    ``lockout=None``, keeps waiting ``max_delay`` (throttled, never locked).
    """

    threshold: int
    window: float = 3600.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    lockout: float | None = 900.0

    def delay(self, failures: int) -> float:
        over = failures - self.threshold
        if over < 0:
            return 0.0
        delay = self.base_delay * 2.0 ** min(over, 64)
        if delay > self.max_delay:
            return self.lockout if self.lockout is not None else self.max_delay
        return delay


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0
    last_success: float | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What :meth:`LoginAttemptStore.reserve` did: counted (``wait`` None; ``counters`` as
    they are now) or refused (``wait`` seconds; ``counters``: the blocked keys)."""

    wait: float | None
    counters: tuple[Counter, ...] = ()


class _Refused(Exception):
    """Rolls the reservation back when a key is blocked."""

    def __init__(self, wait: float, blocked: tuple[Counter, ...]) -> None:
        self.wait = wait
        self.blocked = blocked


def _counter(row: Any) -> Counter:
    return Counter(row.key, row.failures, row.last_failure, row.blocked_until, row.last_success)


class LoginAttemptStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    def _count(self, conn: Connection, key: str, rule: Rule, now: float) -> tuple[Counter, float]:
        """Add one failure to ``key`` (from 1 again once it decayed); returns the row and
        the ``blocked_until`` it had before."""
        decayed = (_T.last_failure < now - rule.window) & (_T.blocked_until <= now)
        stmt = (
            self._insert(login_attempts)
            .values(key=key, failures=1, last_failure=now, blocked_until=0.0)
            .on_conflict_do_update(
                index_elements=[_T.key],
                set_={
                    "failures": case((decayed, 1), else_=_T.failures + 1),
                    "last_failure": now,
                },
            )
            .returning(*login_attempts.c)
        )
        counter = _counter(conn.execute(stmt).one())
        blocked_before = counter.blocked_until
        blocked_until = now + rule.delay(counter.failures)
        if blocked_until > now and blocked_until > counter.blocked_until:
            conn.execute(
                update(login_attempts).where(_T.key == key).values(blocked_until=blocked_until)
            )
            counter = Counter(
                key, counter.failures, counter.last_failure, blocked_until, counter.last_success
            )
        return counter, blocked_before

    def reserve(
        self, keys: Sequence[tuple[str, Rule]], now: float, *, gate: bool = True
    ) -> Reservation:
        """Count one attempt on every key, all or nothing.

        With ``gate`` (before checking a password), a key blocked at ``now`` refuses the
        attempt: nothing is counted and the longest remaining wait comes back. Without it
        (a failure that cost nothing to check) the failure is counted regardless. Keys
        are taken in sorted order so concurrent transactions never deadlock on PostgreSQL.
        """
        try:
            with self._db.write() as conn:
                counters = self._count_all(conn, keys, now, gate=gate)
        except _Refused as refused:  # rolled back: nothing counted
            return Reservation(refused.wait, refused.blocked)
        return Reservation(None, counters)

    def _count_all(
        self, conn: Connection, keys: Sequence[tuple[str, Rule]], now: float, *, gate: bool
    ) -> tuple[Counter, ...]:
        counters = []
        blocked = []
        for key, rule in sorted(keys, key=lambda k: k[0]):
            counter, blocked_before = self._count(conn, key, rule, now)
            counters.append(counter)
            if blocked_before > now:
                blocked.append(Counter(key, blocked_until=blocked_before))
        if gate and blocked:
            raise _Refused(max(c.blocked_until for c in blocked) - now, tuple(blocked))
        return tuple(counters)

    def succeed(self, key: str, release: Sequence[tuple[str, Rule]], now: float) -> None:
        """A login succeeded: ``key`` is cleared and marked known; each ``release`` key
        gets back the attempt reserved on it (and is unblocked once under its threshold).
        Rows are written in key order, as :meth:`reserve` does, so the two never deadlock."""
        changes: list[tuple[str, Rule | None]] = [(key, None), *release]
        with self._db.write() as conn:
            for other, rule in sorted(changes, key=lambda k: k[0]):
                if rule is None:
                    self._mark_known(conn, other, now)
                else:
                    self._release(conn, other, rule)

    def _mark_known(self, conn: Connection, key: str, now: float) -> None:
        conn.execute(
            self._insert(login_attempts)
            .values(key=key, failures=0, last_failure=0.0, blocked_until=0.0, last_success=now)
            .on_conflict_do_update(
                index_elements=[_T.key],
                set_={"failures": 0, "blocked_until": 0.0, "last_success": now},
            )
        )

    @staticmethod
    def _release(conn: Connection, key: str, rule: Rule) -> None:
        conn.execute(
            update(login_attempts)
            .where(_T.key == key)
            .values(
                failures=case((_T.failures > 0, _T.failures - 1), else_=0),
                blocked_until=case((_T.failures - 1 < rule.threshold, 0.0), else_=_T.blocked_until),
            )
        )

    def block(self, until: Sequence[tuple[str, float]]) -> None:
        """Block each key until at least the time given (never shortens a block)."""
        with self._db.write() as conn:
            for key, blocked_until in sorted(until):
                conn.execute(
                    update(login_attempts)
                    .where(_T.key == key, _T.blocked_until < blocked_until)
                    .values(blocked_until=blocked_until)
                )

    def get(self, keys: Sequence[str]) -> dict[str, Counter]:
        with self._db.read() as conn:
            rows = conn.execute(select(login_attempts).where(_T.key.in_(list(keys))))
            return {row.key: _counter(row) for row in rows}

    def blocked(self, now: float) -> builtins.list[Counter]:
        """Every key blocked at ``now`` (few: the ones under attack)."""
        with self._db.read() as conn:
            rows = conn.execute(select(login_attempts).where(_T.blocked_until > now))
            return [_counter(row) for row in rows]

    def prune(self, now: float, *, window: float, known_for: float) -> int:
        """Forget keys that are neither blocked, nor recently failed, nor recently known."""
        with self._db.write() as conn:
            result = conn.execute(
                delete(login_attempts).where(
                    _T.blocked_until <= now,
                    _T.last_failure < now - window,
                    or_(_T.last_success.is_(None), _T.last_success < now - known_for),
                )
            )
        return int(result.rowcount or 0)
