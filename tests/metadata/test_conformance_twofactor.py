"""Metadata conformance: second factors (``twofactor``, ``recovery_codes``) on SQLite and
PostgreSQL, including the single-use rules under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from hatchway.metadata import ConflictError, MetadataStore, NotFoundError
from tests.metadata.factories import HASH, th


def test_enrolment_is_pending_until_confirmed(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    assert store.twofactor.get("alice") is None
    store.twofactor.start("alice", "SECRET1")
    found = store.twofactor.get("alice")
    assert found is not None
    assert (found.secret, found.active, found.last_step) == ("SECRET1", False, None)
    assert not store.twofactor.is_active("alice")
    store.twofactor.start("alice", "SECRET2")  # a pending enrolment may restart
    assert store.twofactor.confirm("alice", 100, [th(str(i)) for i in range(10)])
    found = store.twofactor.get("alice")
    assert found is not None
    assert (found.secret, found.active, found.last_step, found.recovery_left) == (
        "SECRET2",
        True,
        100,
        10,
    )
    assert store.twofactor.is_active("alice")
    assert not store.twofactor.confirm("alice", 101, [])  # confirmed already
    with pytest.raises(ConflictError):
        store.twofactor.start("alice", "SECRET3")


def test_unknown_account(store: MetadataStore) -> None:
    with pytest.raises(NotFoundError):
        store.twofactor.start("ghost", "S")
    assert not store.twofactor.take_step("ghost", 1)
    assert not store.twofactor.is_active("ghost")
    assert store.twofactor.recovery_hashes("ghost") == []


def test_steps_only_move_forward(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    store.twofactor.start("alice", "S")
    assert not store.twofactor.take_step("alice", 5)  # not confirmed: no step is taken
    store.twofactor.confirm("alice", 10, [])
    assert not store.twofactor.take_step("alice", 10)
    assert not store.twofactor.take_step("alice", 9)
    assert store.twofactor.take_step("alice", 11)
    assert not store.twofactor.take_step("alice", 11)


def test_a_step_is_taken_once_under_concurrency(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    store.twofactor.start("alice", "S")
    store.twofactor.confirm("alice", 1, [th("r")])
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda _: store.twofactor.take_step("alice", 2), range(16)))
    assert won.count(True) == 1
    (code_id, _), *_ = store.twofactor.recovery_hashes("alice")
    with ThreadPoolExecutor(8) as pool:
        used = list(pool.map(lambda _: store.twofactor.use_recovery(code_id), range(16)))
    assert used.count(True) == 1


def test_recovery_codes_are_single_use(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    store.twofactor.start("alice", "S")
    store.twofactor.confirm("alice", 1, [th("a"), th("b")])
    codes = store.twofactor.recovery_hashes("alice")
    assert [h for _, h in codes] == [th("a"), th("b")]
    assert store.twofactor.use_recovery(codes[0][0])
    assert not store.twofactor.use_recovery(codes[0][0])
    assert [h for _, h in store.twofactor.recovery_hashes("alice")] == [th("b")]
    found = store.twofactor.get("alice")
    assert found is not None
    assert found.recovery_left == 1


def test_remove_and_account_deletion(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    assert not store.twofactor.remove("alice")
    store.twofactor.start("alice", "S")
    store.twofactor.confirm("alice", 1, [th("a")])
    assert store.twofactor.remove("alice")
    assert store.twofactor.get("alice") is None
    assert store.twofactor.recovery_hashes("alice") == []
    store.twofactor.start("alice", "S")
    store.twofactor.confirm("alice", 1, [th("a")])
    store.accounts.delete("alice")
    store.accounts.create("alice", password_hash=HASH)
    assert store.twofactor.get("alice") is None  # cascaded with the account
