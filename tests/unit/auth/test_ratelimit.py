"""Login throttling: exponential backoff per account and per address, then lockout."""

from __future__ import annotations

import time

import pytest

from hatchway.auth.credentials.ratelimit import Limiter
from tests.unit.auth.accounts_support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> Limiter:
    return Limiter(
        account_threshold=3,
        address_threshold=10,
        window=600,
        base_delay=1,
        max_delay=8,
        lockout=300,
        clock=clock,
    )


def test_backoff_then_lockout(limiter: Limiter, clock: FakeClock) -> None:
    assert limiter.check("alice", "10.0.0.1") is None
    assert limiter.record_failure("alice", "10.0.0.1") is None
    assert limiter.record_failure("alice", "10.0.0.1") is None
    assert limiter.check("alice", "10.0.0.1") is None
    waits = []
    for _ in range(5):
        assert limiter.record_failure("alice", "10.0.0.1") is not None
        wait = limiter.check("alice", "10.0.0.1")
        assert wait is not None
        waits.append(wait)
        clock.now += wait
        assert limiter.check("alice", "10.0.0.1") is None
    assert waits == [1, 2, 4, 8, 300]  # doubling, then locked out
    assert limiter.check("alice", "10.0.0.2") is None  # other address: only the account


def test_success_clears_the_account_only(limiter: Limiter, clock: FakeClock) -> None:
    for _ in range(3):
        limiter.record_failure("alice", "10.0.0.1")
    clock.now += 1
    limiter.record_success("alice", "10.0.0.1")
    assert limiter.check("alice", "10.0.0.1") is None
    assert limiter.record_failure("alice", "10.0.0.1") is None  # counting from zero again


def test_address_throttled_across_accounts(limiter: Limiter) -> None:
    for i in range(9):
        assert limiter.record_failure(f"user{i}", "10.0.0.9") is None
    assert limiter.record_failure("user9", "10.0.0.9") == 1
    assert limiter.check("someone-else", "10.0.0.9") == 1
    assert limiter.check("someone-else", "10.0.0.10") is None
    assert limiter.check(None, "10.0.0.9") == 1


def test_failures_decay(limiter: Limiter, clock: FakeClock) -> None:
    limiter.record_failure("alice", None)
    limiter.record_failure("alice", None)
    clock.now += 601
    assert limiter.record_failure("alice", None) is None  # the old two are forgotten
    assert limiter.record_failure("alice", None) is None
    assert limiter.record_failure("alice", None) == 1


def test_memory_is_bounded(clock: FakeClock) -> None:
    limiter = Limiter(max_keys=100, window=10, clock=clock)
    for i in range(1000):
        limiter.record_failure(f"u{i}", None)
        clock.now += 0.001
    assert len(limiter._buckets) <= 100
    clock.now += 100
    limiter.record_failure("last", None)
    assert len(limiter._buckets) == 1  # decayed keys went first


def test_hot_path_is_cheap() -> None:
    limiter = Limiter()
    for i in range(1000):
        limiter.record_failure(f"attacker{i}", f"10.1.{i // 256}.{i % 256}")
    start = time.perf_counter()
    for _ in range(50_000):
        limiter.check("alice", "192.0.2.1")
    assert time.perf_counter() - start < 1.0  # ~0.5 us each; 2,000 grants/s need 1 ms
