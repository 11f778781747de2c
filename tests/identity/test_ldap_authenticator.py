"""The LDAP backend in-process against a real slapd, counting the directory requests
(``Directory.round_trips``): a first login, a returning user on another worker (one bind),
the same password again (none), a wrong one (one bind, counted by the throttle)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from hatchway.auth.credentials.passwords import before_check
from hatchway.auth.identity.base import ClientInfo, IdentityUnavailable
from hatchway.auth.identity.ldap import LdapAuthenticator
from hatchway.auth.identity.ldapclient import Directory
from hatchway.auth.principal import Principal
from hatchway.metadata import MetadataStore
from hatchway.metadata.records import utcnow
from tests.identity.conftest import ldap_config
from tests.support.slapd import ADMINS, DEVS, PASSWORDS, SUFFIX, Slapd

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


def test_token_checks_follow_the_directory(own_slapd: Slapd, store: MetadataStore) -> None:
    """A token-only account is checked once ``refreshinterval`` has passed: groups
    refreshed, a removed user refused, a directory that is down a 503 (not a pass)."""
    now = [utcnow()]
    backend = LdapAuthenticator(
        Directory(ldap_config(own_slapd, refreshinterval="60s", admingroups=[ADMINS])),
        store,
        clock=lambda: now[0],
    )
    try:
        assert backend.authenticate("alice", PASSWORDS["alice"], CLIENT) is not None
        assert backend.authenticate("erin", PASSWORDS["erin"], CLIENT) is not None
        alice, erin = store.accounts.get("alice"), store.accounts.get("erin")
        assert alice is not None
        assert erin is not None
        token = Principal(subject="alice", token_id="7")
        before = backend.directory.round_trips
        assert backend.current(alice, token) is not None
        assert backend.directory.round_trips == before  # fresh: no request

        own_slapd.modify(
            f"dn: {ADMINS}\nchangetype: modify\nadd: member\nmember: uid=alice,ou=people,{SUFFIX}\n"
        )
        own_slapd.delete(f"uid=erin,ou=people,{SUFFIX}")
        now[0] += timedelta(seconds=61)
        found = backend.current(alice, token)
        assert found is not None
        assert found.admin
        assert found.token_id == "7"
        assert backend.current(erin, Principal(subject="erin")) is None
        assert backend.resolve("erin") is None

        own_slapd.kill()
        now[0] += timedelta(seconds=61)
        with pytest.raises(IdentityUnavailable):
            backend.current(alice, token)
        with pytest.raises(IdentityUnavailable):
            backend.resolve("alice")
    finally:
        backend.close()
