"""Metadata conformance, part 4: login attempt counters shared between workers.

Every test runs on SQLite and on PostgreSQL (the ``dsn`` fixture in conftest.py). The
concurrent ones use one store per thread (one connection pool each, as workers have).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from hatchway.metadata import MetadataStore
from hatchway.metadata.attempts import Reservation, Rule

T0 = 1_000_000.0
RULE = Rule(threshold=3, window=600, base_delay=1, max_delay=8, lockout=300)


def test_reserve_counts_each_key(store: MetadataStore) -> None:
    got = store.attempts.reserve([("b", RULE), ("a", RULE)], T0)
    assert got.wait is None
    assert [(c.key, c.failures, c.blocked_until) for c in got.counters] == [
        ("a", 1, 0.0),
        ("b", 1, 0.0),
    ]
    store.attempts.reserve([("a", RULE)], T0 + 1)
    found = store.attempts.get(["a", "b", "c"])
    assert set(found) == {"a", "b"}
    assert (found["a"].failures, found["a"].last_failure) == (2, T0 + 1)
    assert found["a"].last_success is None


def test_threshold_blocks_with_backoff_then_lockout(store: MetadataStore) -> None:
    now = T0
    assert store.attempts.reserve([("k", RULE)], now).counters[0].blocked_until == 0
    assert store.attempts.reserve([("k", RULE)], now).counters[0].blocked_until == 0
    third = store.attempts.reserve([("k", RULE)], now).counters[0]
    assert (third.failures, third.blocked_until) == (3, now + 1)  # the 3rd failure: 1 s
    refused = store.attempts.reserve([("k", RULE)], now + 0.5)
    assert refused.wait == 0.5
    assert [c.key for c in refused.counters] == ["k"]
    assert store.attempts.get(["k"])["k"].failures == 3  # a refused attempt counts nothing
    for delay in (2, 4, 8, 300):  # doubling until past max_delay, then the lockout
        now += 100
        counter = store.attempts.reserve([("k", RULE)], now).counters[0]
        assert counter.blocked_until == now + delay
    assert store.attempts.reserve([("k", RULE)], now + 299).wait == 1


def test_refusal_is_all_or_nothing(store: MetadataStore) -> None:
    for _ in range(3):
        store.attempts.reserve([("blocked", RULE)], T0)
    got = store.attempts.reserve([("blocked", RULE), ("free", RULE)], T0)
    assert got.wait == 1
    assert store.attempts.get(["free"]) == {}
    # Without the gate (a failure that cost nothing to check) it counts regardless.
    counted = store.attempts.reserve([("blocked", RULE), ("free", RULE)], T0, gate=False)
    assert counted.wait is None
    assert {c.key: c.failures for c in counted.counters} == {"blocked": 4, "free": 1}


def test_failures_decay_after_the_window(store: MetadataStore) -> None:
    store.attempts.reserve([("k", RULE)], T0)
    store.attempts.reserve([("k", RULE)], T0)
    counter = store.attempts.reserve([("k", RULE)], T0 + 601).counters[0]
    assert counter.failures == 1


def test_success_clears_marks_known_and_releases(store: MetadataStore) -> None:
    for _ in range(3):
        store.attempts.reserve([("pair", RULE), ("addr", RULE)], T0)
    assert store.attempts.get(["addr"])["addr"].blocked_until == T0 + 1
    store.attempts.succeed("pair", [("addr", RULE)], T0 + 0.2)
    found = store.attempts.get(["pair", "addr"])
    assert (found["pair"].failures, found["pair"].blocked_until) == (0, 0.0)
    assert found["pair"].last_success == T0 + 0.2
    # The address got its reserved attempt back; under its threshold again, unblocked.
    assert (found["addr"].failures, found["addr"].blocked_until) == (2, 0.0)
    store.attempts.succeed("new-pair", [], T0 + 1)
    assert store.attempts.get(["new-pair"])["new-pair"].last_success == T0 + 1


def test_block_extends_but_never_shortens(store: MetadataStore) -> None:
    store.attempts.reserve([("k", RULE)], T0)
    store.attempts.block([("k", T0 + 50), ("missing", T0 + 50)])
    store.attempts.block([("k", T0 + 10)])
    assert store.attempts.get(["k"])["k"].blocked_until == T0 + 50
    assert store.attempts.get(["missing"]) == {}
    assert [c.key for c in store.attempts.blocked(T0 + 49)] == ["k"]
    assert store.attempts.blocked(T0 + 50) == []


def test_prune_keeps_what_still_matters(store: MetadataStore) -> None:
    store.attempts.reserve([("old", RULE)], T0)
    store.attempts.reserve([("recent", RULE)], T0 + 500)
    store.attempts.block([("held", T0 + 2000)])
    store.attempts.reserve([("held", RULE)], T0)
    store.attempts.block([("held", T0 + 2000)])
    store.attempts.succeed("known", [], T0)
    assert store.attempts.prune(T0 + 1000, window=600, known_for=5000) == 1
    assert set(store.attempts.get(["old", "recent", "held", "known"])) == {
        "recent",
        "held",
        "known",
    }
    assert store.attempts.prune(T0 + 6000, window=600, known_for=5000) == 3


def _in_threads(
    dsn: str, count: int, work: Callable[[MetadataStore], Reservation]
) -> list[Reservation]:
    """Run ``work`` in ``count`` threads at once, each with a store of its own."""
    stores = [MetadataStore(dsn, create=False) for _ in range(count)]
    results: list[Reservation] = []
    lock = threading.Lock()
    start = threading.Barrier(count)

    def run(store: MetadataStore) -> None:
        start.wait()
        got = work(store)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.dispose()
    return results


def test_parallel_reservations_admit_exactly_the_threshold(store: MetadataStore, dsn: str) -> None:
    """Concurrent workers reserving on one key: the first three are admitted, the others
    refused; none is lost and none slips through between count and block."""
    results = _in_threads(
        dsn, 24, lambda s: s.attempts.reserve([("pair", RULE), ("addr", RULE)], T0)
    )
    assert sum(r.wait is None for r in results) == 3
    assert store.attempts.get(["pair"])["pair"].failures == 3


def test_parallel_failures_are_all_counted(store: MetadataStore, dsn: str) -> None:
    results = _in_threads(dsn, 24, lambda s: s.attempts.reserve([("k", RULE)], T0, gate=False))
    assert all(r.wait is None for r in results)
    assert store.attempts.get(["k"])["k"].failures == 24


def test_concurrent_logins_and_successes_do_not_deadlock(store: MetadataStore, dsn: str) -> None:
    """Reservations and successes lock the same rows; in one order, so PostgreSQL never
    has to abort one of them as a deadlock victim."""
    keys = [("pair:alice|x", RULE), ("addr:x", RULE), ("account:alice", RULE)]
    loose = Rule(threshold=10_000)

    def work(s: MetadataStore) -> Reservation:
        for _ in range(15):
            s.attempts.reserve([(k, loose) for k, _ in keys], T0)
            s.attempts.succeed("pair:alice|x", [(k, loose) for k, _ in keys[1:]], T0)
        return Reservation(None)

    results = _in_threads(dsn, 8, work)
    assert len(results) == 8
    assert store.attempts.get(["addr:x"])["addr:x"].failures == 0
