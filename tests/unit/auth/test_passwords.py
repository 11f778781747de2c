"""bcrypt hashing, and the verifier's cache: bcrypt once, then a short-lived HMAC'd hit."""

from __future__ import annotations

from collections.abc import Callable

import bcrypt
import pytest

from hatchway.auth.credentials.passwords import (
    PasswordVerifier,
    bcrypt_cost,
    dummy_hash,
    hash_password,
)
from tests.unit.auth.accounts_support import FAST, FakeClock

PW = hash_password("s3cret", FAST)


def test_hash_password() -> None:
    assert bcrypt_cost(PW) == FAST
    assert bcrypt.checkpw(b"s3cret", PW.encode())
    assert hash_password("s3cret", FAST) != PW  # salted
    with pytest.raises(ValueError, match="empty"):
        hash_password("")
    with pytest.raises(ValueError, match="72 bytes"):
        hash_password("é" * 37)  # 74 bytes
    assert bcrypt_cost("$apr1$abc$def") is None
    assert bcrypt_cost("$2y$05$" + "x" * 53) == 5


def test_verify_and_cache() -> None:
    clock = FakeClock()
    v = PasswordVerifier(dummy_rounds=FAST, ttl=60, clock=clock)
    assert v.verify("alice", "s3cret", PW)
    assert (v.checks, v.hits) == (1, 0)
    assert v.verify("alice", "s3cret", PW)
    assert (v.checks, v.hits) == (1, 1)  # no bcrypt the second time
    assert not v.verify("alice", "wrong", PW)
    assert v.verify("bob", "s3cret", PW)  # another name: its own entry, so bcrypt again
    assert v.checks == 3
    clock.now += 61
    assert v.verify("alice", "s3cret", PW)
    assert v.checks == 4  # the entry had expired


def test_cache_ends_when_the_hash_changes() -> None:
    v = PasswordVerifier(dummy_rounds=FAST)
    assert v.verify("alice", "s3cret", PW)
    new = hash_password("other", FAST)
    assert not v.verify("alice", "s3cret", new)  # changed elsewhere: cached success unusable
    assert v.verify("alice", "other", new)
    v.clear()
    assert v.verify("alice", "other", new)
    assert v.hits == 0


def test_cache_keeps_no_password() -> None:
    v = PasswordVerifier(dummy_rounds=FAST)
    v.verify("alice", "s3cret", PW)
    (key,) = v._cache
    assert b"s3cret" not in key
    assert len(key) == 32


def test_unknown_account_pays_bcrypt_on_a_dummy(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    real: Callable[[bytes, bytes], bool] = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    v = PasswordVerifier(dummy_rounds=FAST)
    assert not v.verify("nobody", "s3cret", None)
    assert not v.verify("nobody", "s3cret", None)  # never cached
    assert seen == [dummy_hash(FAST), dummy_hash(FAST)]
    assert not v.verify("broken", "x", "not-a-hash")
    assert seen[-1] == dummy_hash(FAST)
    assert v.checks == 3


def test_long_passwords() -> None:
    long = "a" * 80
    apache = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(FAST)).decode()
    strict = PasswordVerifier(dummy_rounds=FAST)
    assert not strict.verify("alice", long, apache)
    assert strict.checks == 1  # still pays bcrypt
    truncating = PasswordVerifier(dummy_rounds=FAST, truncate=True)
    assert truncating.verify("alice", long, apache)


def test_cache_is_bounded() -> None:
    v = PasswordVerifier(dummy_rounds=FAST, max_entries=3)
    hashes = {f"u{i}": hash_password(f"p{i}", FAST) for i in range(5)}
    for name, hashed in hashes.items():
        assert v.verify(name, f"p{name[1:]}", hashed)
    assert len(v._cache) <= 3
