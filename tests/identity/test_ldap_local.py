"""The local backend and federated accounts: their passwords are not its to check (no
bcrypt), and their tokens count only as their source says (none configured: refused)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchway.auth.credentials.passwords import PasswordVerifier, hash_password
from hatchway.auth.credentials.pat import create_token
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.identity.local import LocalAuthenticator
from hatchway.auth.principal import Principal
from hatchway.metadata import Account, MetadataStore
from hatchway.metadata.records import utcnow

CLIENT = ClientInfo("127.0.0.1", "tests")
DEVS = "cn=devs,ou=groups,dc=example,dc=com"


class Source:
    """A federated source that answers as told (what the LDAP backend's ``current`` does)."""

    def __init__(self) -> None:
        self.alive = True

    def current(self, account: Account, principal: Principal) -> Principal | None:
        if not self.alive:
            return None
        return dataclasses.replace(principal, groups=principal.groups | {DEVS})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = MetadataStore(f"sqlite:///{tmp_path / 'hatchway.db'}")
    opened.external.create(
        "alice",
        source="ldap",
        external_id="uid=alice",
        groups=frozenset(),
        admin=False,
        now=utcnow(),
    )
    opened.accounts.create("bob", password_hash=hash_password("bob-Pw-123", rounds=4))
    yield opened
    opened.dispose()


def test_no_bcrypt_for_a_federated_accounts_password(store: MetadataStore) -> None:
    verifier = PasswordVerifier(dummy_rounds=4)
    local = LocalAuthenticator(store, verifier=verifier)
    assert local.authenticate("alice", "anything", CLIENT) is None
    assert verifier.checks == 0
    assert local.authenticate("bob", "bob-Pw-123", CLIENT) is not None
    assert local.has_local_account("bob")
    assert not local.has_local_account("alice")
    assert local.has_account("alice")


def test_federated_tokens_follow_their_source(store: MetadataStore) -> None:
    _, secret = create_token(
        store, "alice", name="ci", scopes=["repository:alice/*:pull"], lifetime=None
    )
    local = LocalAuthenticator(store)
    # No source for "ldap" configured (the section was removed): its tokens stop.
    assert local.authenticate("alice", secret, CLIENT) is None
    source = Source()
    local.federated["ldap"] = source
    found = local.authenticate("alice", secret, CLIENT)
    assert found is not None
    assert DEVS in found.groups
    assert found.token_scopes
    assert local.resolve("alice", found.token_id) is not None
    assert local.resolve("alice") is None  # a password session is the source's, not ours
    source.alive = False
    assert local.authenticate("alice", secret, CLIENT) is None
    assert local.resolve("alice", found.token_id) is None
