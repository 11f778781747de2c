"""Metadata conformance: federated accounts and their directory state
(``external_identities``), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hatchway.metadata import ConflictError, InvalidNameError, MetadataError, MetadataStore
from hatchway.metadata.records import utcnow
from tests.metadata.factories import HASH

DN = "uid=alice,ou=people,dc=example,dc=com"
DEVS = "cn=devs,ou=groups,dc=example,dc=com"


def test_create_makes_a_passwordless_account(store: MetadataStore) -> None:
    now = utcnow()
    made = store.external.create(
        "alice", source="ldap", external_id=DN, groups=frozenset({DEVS}), admin=True, now=now
    )
    assert (made.account, made.external_id, made.groups, made.disabled) == (
        "alice",
        DN,
        frozenset({DEVS}),
        False,
    )
    account = store.accounts.get("alice")
    assert account is not None
    assert (account.source, account.password_hash, account.admin) == ("ldap", None, True)
    assert store.external.find("ldap", DN) == made
    assert store.external.find("oidc", DN) is None
    store.accounts.create("bob")
    bob = store.accounts.get("bob")
    assert bob is not None
    assert bob.source == "local"
    assert store.external.get("bob") is None


def test_names_and_entries_are_unique(store: MetadataStore) -> None:
    now = utcnow()
    store.external.create(
        "alice", source="ldap", external_id=DN, groups=frozenset(), admin=False, now=now
    )
    with pytest.raises(ConflictError):
        store.external.create(
            "alice", source="ldap", external_id="uid=x", groups=frozenset(), admin=False, now=now
        )
    with pytest.raises(ConflictError):
        store.external.create(
            "other", source="ldap", external_id=DN, groups=frozenset(), admin=False, now=now
        )
    store.accounts.create("carol")
    with pytest.raises(ConflictError):
        store.external.create(
            "carol",
            source="ldap",
            external_id="uid=carol",
            groups=frozenset(),
            admin=False,
            now=now,
        )
    with pytest.raises(InvalidNameError):
        store.external.create(
            "jürgen", source="ldap", external_id="uid=j", groups=frozenset(), admin=False, now=now
        )
    assert store.accounts.get("other") is None  # nothing half-made


def test_update_disable_and_delete(store: MetadataStore) -> None:
    now = utcnow()
    made = store.external.create(
        "alice", source="ldap", external_id=DN, groups=frozenset({DEVS}), admin=True, now=now
    )
    later = now + timedelta(minutes=5)
    store.external.disable(made.account_id, later)
    gone = store.external.get("alice")
    assert gone is not None
    assert (gone.disabled, gone.groups, gone.checked_at) == (True, frozenset(), later)
    account = store.accounts.get("alice")
    assert account is not None
    assert account.admin is False
    moved = "uid=alice,ou=staff,dc=example,dc=com"
    store.external.update(
        made.account_id, external_id=moved, groups=frozenset(), admin=True, now=later
    )
    back = store.external.get("alice")
    assert back is not None
    assert (back.disabled, back.external_id) == (False, moved)
    account = store.accounts.get("alice")
    assert account is not None
    assert account.admin is True
    store.accounts.delete("alice")
    assert store.external.get("alice") is None
    assert store.external.find("ldap", moved) is None


def test_no_local_password_and_sessions_end_with_the_account(store: MetadataStore) -> None:
    store.external.create(
        "alice", source="ldap", external_id=DN, groups=frozenset(), admin=False, now=utcnow()
    )
    with pytest.raises(MetadataError, match="account of ldap"):
        store.accounts.set_password("alice", HASH)
    store.refresh_tokens.create(
        "alice", backend="ldap", client_id="docker", token_hash="a" * 64, access_token_id=None
    )
    store.accounts.delete("alice")
    assert store.refresh_tokens.find_active("a" * 64) is None
