"""The Redis throttle counter store passes the SQL store's conformance tests (those that
do not look at pruning, which Redis does by expiry), against a private redis-server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatchway.metadata.attempts import Reservation
from hatchway.shared.redis import FallbackAttemptStore, RedisAttemptStore
from tests.metadata.test_conformance_attempts import (
    RULE,
    T0,
    test_block_extends_but_never_shortens,
    test_failures_decay_after_the_window,
    test_refusal_is_all_or_nothing,
    test_reserve_counts_each_key,
    test_success_clears_marks_known_and_releases,
    test_threshold_blocks_with_backoff_then_lockout,
)
from tests.support.redisserver import RedisServer, start_redis

__all__ = [
    "test_block_extends_but_never_shortens",
    "test_failures_decay_after_the_window",
    "test_refusal_is_all_or_nothing",
    "test_reserve_counts_each_key",
    "test_success_clears_marks_known_and_releases",
    "test_threshold_blocks_with_backoff_then_lockout",
]


@dataclass
class _Store:
    attempts: RedisAttemptStore


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[_Store]:
    conn = redis_server.client(db=5)
    conn.flushdb()
    yield _Store(RedisAttemptStore(conn))
    conn.close()


def test_parallel_reservations_admit_exactly_the_threshold(redis_server: RedisServer) -> None:
    """24 replicas' workers at once: the threshold's worth get through, no more."""
    redis_server.client(db=5).flushdb()
    results: list[Reservation] = []
    lock = threading.Lock()

    def work() -> None:
        with redis_server.client(db=5) as conn:
            got = RedisAttemptStore(conn).reserve([("pair", RULE), ("addr", RULE)], T0)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=work) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.wait is None for r in results) == RULE.threshold


def test_prune_cuts_only_past_blocks(store: _Store) -> None:
    for _ in range(3):
        store.attempts.reserve([("k", RULE)], T0)
    assert [c.key for c in store.attempts.blocked(T0)] == ["k"]
    assert store.attempts.prune(T0 + 10, window=600, known_for=5000) == 1
    assert store.attempts.blocked(T0) == []
    assert store.attempts.get(["k"])["k"].failures == 3  # the count itself expires by TTL


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    def blocked(self, now: float) -> list[object]:
        self.calls += 1
        return []


def test_fallback_uses_the_database_while_redis_is_down(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    conn = server.client()
    database = _Counting()
    store = FallbackAttemptStore(RedisAttemptStore(conn), database, retry=0)
    assert store.blocked(T0) == []
    assert database.calls == 0
    server.stop()
    assert store.blocked(T0) == []
    assert database.calls == 1
    conn.close()
