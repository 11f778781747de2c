"""Login throttling: counted before bcrypt, keyed so nobody can lock a victim out at will.

The limiter runs over the real SQLite store; logins check real bcrypt hashes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from hatchway.auth.credentials.passwords import PasswordVerifier
from hatchway.auth.credentials.ratelimit import Limiter, Throttled, address_key
from hatchway.metadata import MetadataStore
from tests.unit.auth.accounts_support import FAST, FakeClock, new_store, verifier

HASH = bcrypt.hashpw(b"right", bcrypt.gensalt(FAST)).decode()
HOME = "192.0.2.1"
ELSEWHERE = "198.51.100.7"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = new_store(tmp_path)
    yield opened
    opened.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(store: MetadataStore, clock: FakeClock) -> Limiter:
    return Limiter(store.attempts, sync_interval=0, clock=clock)


def login(
    limiter: Limiter,
    check: PasswordVerifier,
    password: str,
    address: str = HOME,
    account: str = "alice",
) -> bool:
    """One login through the limiter: True, False, or :class:`Throttled`."""
    found = limiter.login(account, address, lambda: check.verify(account, password, HASH) or None)
    return found is not None


def test_backoff_then_lockout_for_the_pair(limiter: Limiter, clock: FakeClock) -> None:
    check = verifier()
    for _ in range(5):
        assert login(limiter, check, "wrong") is False
    waits = []
    for _ in range(6):
        with pytest.raises(Throttled) as refused:
            login(limiter, check, "right")  # the right password waits too
        waits.append(refused.value.wait)
        clock.now += refused.value.wait
        assert login(limiter, check, "wrong") is False
    assert waits == [1, 2, 4, 8, 16, 32]
    with pytest.raises(Throttled) as refused:
        login(limiter, check, "wrong")
    assert refused.value.wait == 900  # the next wait would pass 60 s: locked instead


def test_a_guesser_locks_only_its_own_address_out(limiter: Limiter) -> None:
    check = verifier()
    for _ in range(5):
        login(limiter, check, "wrong", address=ELSEWHERE)
    with pytest.raises(Throttled):
        login(limiter, check, "right", address=ELSEWHERE)
    assert login(limiter, check, "right", address=HOME) is True


def test_success_clears_the_pair(limiter: Limiter) -> None:
    check = verifier()
    for _ in range(4):
        login(limiter, check, "wrong")
    assert login(limiter, check, "right") is True
    for _ in range(4):
        assert login(limiter, check, "wrong") is False  # counting from zero again
    assert login(limiter, check, "right") is True  # a remembered password (no bcrypt)
    for _ in range(4):
        assert login(limiter, check, "wrong") is False  # ... clears them as well


def test_address_throttled_across_accounts(limiter: Limiter) -> None:
    check = verifier()
    for i in range(20):
        assert login(limiter, check, "wrong", account=f"user{i}") is False
    with pytest.raises(Throttled):
        login(limiter, check, "right", account="someone-else")
    assert login(limiter, check, "right", account="someone-else", address=ELSEWHERE) is True


def test_successes_do_not_use_up_the_address(limiter: Limiter) -> None:
    """A busy CI address logs in all day: only failures count against it."""
    check = PasswordVerifier(dummy_rounds=FAST, ttl=0)  # bcrypt every time
    for i in range(50):
        assert login(limiter, check, "right", account=f"robot{i % 3}") is True
    for i in range(19):
        assert login(limiter, check, "wrong", account=f"user{i}") is False
    assert login(limiter, check, "right") is True


def test_many_addresses_throttle_the_account_but_not_where_it_is_known(
    limiter: Limiter, clock: FakeClock
) -> None:
    check = verifier()
    assert login(limiter, check, "right", address=HOME) is True  # HOME is now known
    for i in range(100):  # 100 guessers, 4 tries each would stay under their pair's 5
        assert login(limiter, check, "wrong", address=f"10.0.{i // 250}.{i % 250}") is False
    with pytest.raises(Throttled) as refused:
        login(limiter, check, "right", address="203.0.113.9")  # a new place must wait
    assert refused.value.wait == 1
    assert login(limiter, check, "right", address=HOME) is True  # the owner is not
    # Throttled, never locked: the wait stops growing at 60 s.
    for i in range(12):
        clock.now += 61
        login(limiter, check, "wrong", address=f"10.1.0.{i}")
    with pytest.raises(Throttled) as refused:
        login(limiter, check, "wrong", address="10.2.0.1")
    assert refused.value.wait == 60


def test_parallel_wrong_guesses_are_counted_before_bcrypt(limiter: Limiter) -> None:
    """The issue's reproduction in miniature: 40 simultaneous wrong passwords may not all
    be checked before the first is counted."""
    check = verifier()
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(40)

    def guess() -> None:
        start.wait()
        try:
            outcome = "ok" if login(limiter, check, "wrong") else "wrong"
        except Throttled:
            outcome = "throttled"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=guess) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("wrong") == 5
    assert outcomes.count("throttled") == 35
    assert check.checks == 5  # bcrypt ran five times, not forty


def test_a_remembered_password_waits_during_a_block(limiter: Limiter) -> None:
    """Else a guesser would learn the right password from a 200 among 429s."""
    check = verifier()
    assert login(limiter, check, "right") is True  # now remembered: no bcrypt next time
    for _ in range(5):
        login(limiter, check, "wrong")
    with pytest.raises(Throttled):
        login(limiter, check, "right")
    assert check.hits == 0


def test_blocks_reach_other_workers(store: MetadataStore, clock: FakeClock) -> None:
    """Each worker reads the blocked keys once a second (``sync_interval``)."""
    one = Limiter(store.attempts, clock=clock)
    two = Limiter(store.attempts, clock=clock)
    check = verifier()
    assert login(two, check, "right") is True  # remembered by worker two from now on
    for _ in range(5):
        login(one, check, "wrong")
    clock.now += 1
    login(one, check, "wrong")  # the 6th failure: 2 s
    clock.now += 0.5
    with pytest.raises(Throttled):  # worker two's remembered password waits too
        login(two, check, "right")


def test_unguessable_secrets_skip_the_block(limiter: Limiter) -> None:
    check = verifier()
    for _ in range(5):
        login(limiter, check, "wrong")
    found = limiter.login("alice", HOME, lambda: "a token's principal", unguessable=True)
    assert found == "a token's principal"
    # Shaped like a token but checked as a password (bcrypt): counted and refused.
    with pytest.raises(Throttled):
        limiter.login(
            "alice", HOME, lambda: check.verify("alice", "hw_x", HASH) or None, unguessable=True
        )


def test_free_failures_count_for_the_address_only(limiter: Limiter) -> None:
    for _ in range(20):
        assert limiter.login("alice", HOME, lambda: None) is None  # nothing checked
    with pytest.raises(Throttled):
        login(limiter, verifier(), "right", account="bob")
    assert login(limiter, verifier(), "right", address=ELSEWHERE) is True


def test_address_keys() -> None:
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2::99") == address_key("2001:db8:1:2:ffff::1")
    assert address_key(None) == "-"
    assert address_key("not-an-ip") == "not-an-ip"
