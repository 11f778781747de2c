"""Metadata conformance (SQLite and PostgreSQL): the single-use rules of passkeys and
pending web sign-ins. A WebAuthn challenge is taken once (also by concurrent requests), by
its subject and purpose, before it expires; a passkey's counter only moves from the value
it was read at; a passkey alone is an active second factor, and removing the second factor
(disable, admin reset) removes passkeys too; a pending sign-in is taken once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from hatchway.auth.pendingsignin import PendingSignIns
from hatchway.metadata import MetadataStore
from hatchway.metadata.records import ConflictError, utcnow
from tests.metadata.factories import HASH


@pytest.fixture(autouse=True)
def _accounts(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    store.accounts.create("bob", password_hash=HASH)


def test_a_challenge_is_taken_once_by_its_subject_and_purpose(store: MetadataStore) -> None:
    keys = store.passkeys
    later = utcnow() + timedelta(minutes=5)
    keys.add_challenge("c1", "alice", "signin", later)
    assert not keys.take_challenge("c1", "bob", "signin")
    assert not keys.take_challenge("c1", "alice", "register")
    assert keys.take_challenge("c1", "alice", "signin")
    assert not keys.take_challenge("c1", "alice", "signin")  # replay
    keys.add_challenge("old", "alice", "signin", utcnow() - timedelta(seconds=1))
    assert not keys.take_challenge("old", "alice", "signin")  # expired


def test_concurrent_answers_take_a_challenge_once(store: MetadataStore) -> None:
    store.passkeys.add_challenge("race", "alice", "signin", utcnow() + timedelta(minutes=5))
    with ThreadPoolExecutor(8) as pool:
        won = list(
            pool.map(lambda _: store.passkeys.take_challenge("race", "alice", "signin"), range(8))
        )
    assert won.count(True) == 1


def test_the_counter_moves_once_from_where_it_was_read(store: MetadataStore) -> None:
    made = store.passkeys.add(
        "alice", name="laptop", credential_id="cred1", public_key="pk", sign_count=3
    )
    assert store.passkeys.used(made.id, 3, 4)
    assert not store.passkeys.used(made.id, 3, 5)  # a concurrent answer read 3 too: loses
    found = store.passkeys.find("alice", "cred1")
    assert found is not None
    assert found.sign_count == 4
    assert found.last_used_at is not None
    assert store.passkeys.find("bob", "cred1") is None  # not bob's


def test_names_and_credentials_are_unique(store: MetadataStore) -> None:
    store.passkeys.add("alice", name="key", credential_id="c1", public_key="pk", sign_count=0)
    with pytest.raises(ConflictError):
        store.passkeys.add("alice", name="key", credential_id="c2", public_key="pk", sign_count=0)
    with pytest.raises(ConflictError):
        store.passkeys.add("bob", name="key", credential_id="c1", public_key="pk", sign_count=0)
    store.passkeys.add("bob", name="key", credential_id="c3", public_key="pk", sign_count=0)


def test_a_passkey_alone_is_two_factor_and_reset_removes_it(store: MetadataStore) -> None:
    assert not store.twofactor.is_active("alice")
    made = store.passkeys.add(
        "alice", name="key", credential_id="c1", public_key="pk", sign_count=0
    )
    assert store.twofactor.is_active("alice")
    assert store.twofactor.remove("alice") is True
    assert not store.twofactor.is_active("alice")
    assert store.passkeys.list("alice") == []
    assert store.passkeys.remove("alice", made.id) is False
    assert store.twofactor.remove("alice") is False


def test_a_pending_sign_in_is_taken_once(store: MetadataStore) -> None:
    pending = PendingSignIns(store)
    secret = pending.begin("alice", "local", "verify", via="ui", target="/ui/account")
    assert pending.find(secret, "enrol") is None  # another step
    assert pending.find("hw2_not-it", "verify") is None
    found = pending.find(secret, "verify")
    assert found is not None
    assert (found.subject, found.target) == ("alice", "/ui/account")
    assert pending.take(found)
    assert not pending.take(found)
    assert pending.find(secret, "verify") is None
