"""The LDAP backend in-process against a real slapd, counting the directory requests
(``Directory.round_trips``): a first login, a returning user on another worker (one bind),
the same password again (none), a wrong one (one bind, counted by the throttle)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hatchway.auth.credentials.passwords import before_check
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.identity.ldap import LdapAuthenticator
from hatchway.auth.identity.ldapclient import Directory
from hatchway.metadata import MetadataStore
from tests.identity.conftest import ldap_config
from tests.support.slapd import ADMINS, DEVS, PASSWORDS, Slapd

CLIENT = ClientInfo("127.0.0.1", "tests")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = MetadataStore(f"sqlite:///{tmp_path / 'hatchway.db'}")
    yield opened
    opened.dispose()


def _counter(counted: list[int]) -> Callable[[], None]:
    return lambda: counted.append(1)


def _backend(slapd: Slapd, store: MetadataStore) -> LdapAuthenticator:
    return LdapAuthenticator(Directory(ldap_config(slapd, admingroups=[ADMINS])), store)


def test_round_trips(slapd: Slapd, store: MetadataStore) -> None:
    first, second = _backend(slapd, store), _backend(slapd, store)  # two workers
    try:
        found = first.authenticate("alice", PASSWORDS["alice"], CLIENT)
        assert found is not None
        assert found.groups == {DEVS}
        full = first.directory.round_trips
        assert full >= 3  # service bind (new connection), user search, user bind, groups

        before = second.directory.round_trips
        assert second.authenticate("alice", PASSWORDS["alice"], CLIENT) is not None
        # The other worker opens its service connection for nothing: one bind, on the
        # bind pool, to the DN the first login stored.
        assert second.directory.round_trips - before == 1
        before = second.directory.round_trips
        assert second.authenticate("Alice", PASSWORDS["alice"], CLIENT) is not None
        assert second.directory.round_trips == before  # just verified: not sent again

        counted: list[int] = []
        token = before_check.set(lambda: counted.append(1))
        try:
            assert second.authenticate("alice", "wrong", CLIENT) is None
        finally:
            before_check.reset(token)
        assert second.directory.round_trips - before == 1
        assert counted == [1]  # the throttle counted it before the bind
    finally:
        first.close()
        second.close()


def test_unknown_and_disabled_names_are_counted_too(slapd: Slapd, store: MetadataStore) -> None:
    backend = _backend(slapd, store)
    try:
        for name in ("nobody", "*", "alice)(uid=*"):
            counted: list[int] = []
            token = before_check.set(_counter(counted))
            try:
                assert backend.authenticate(name, "some-password", CLIENT) is None
            finally:
                before_check.reset(token)
            assert counted == [1], name
        assert store.accounts.list() == []
    finally:
        backend.close()
