"""The directory client against a real slapd: search with escaped input, binds, groups
by DN (direct, memberOf, nested with a cycle), TLS (StartTLS, LDAPS, a CA made here),
the connection pool, and a directory that is gone."""

from __future__ import annotations

import concurrent.futures
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchway.auth.identity.base import IdentityUnavailable
from hatchway.auth.identity.ldapclient import Directory, Entry, normalize_dn
from tests.identity.conftest import ldap_config
from tests.support.server import free_port
from tests.support.slapd import (
    ADMINS,
    BACKEND,
    COMPANY,
    DEVS,
    ENGINEERING,
    LOOP_A,
    LOOP_B,
    PASSWORDS,
    SUFFIX,
    TEAM_DEVS,
    Slapd,
    make_ca,
)


def _nothing() -> None:
    return None


@pytest.fixture
def directory(slapd: Slapd) -> Iterator[Directory]:
    found = Directory(ldap_config(slapd))
    try:
        yield found
    finally:
        found.close()


def test_find_user_and_bind(directory: Directory) -> None:
    entry = directory.find_user("alice")
    assert entry is not None
    assert entry.dn == f"uid=alice,ou=people,{SUFFIX}"
    assert directory.check_password(entry.dn, PASSWORDS["alice"], _nothing)
    assert not directory.check_password(entry.dn, "wrong", _nothing)
    assert not directory.check_password(entry.dn, PASSWORDS["bob"], _nothing)


@pytest.mark.parametrize(
    "name",
    ["*", "al*", "*)(uid=*", ")(uid=*", "alice)(uid=*", "alice\x00", "\x00", "alice)(|(uid=*"],
)
def test_filter_input_is_escaped(directory: Directory, name: str) -> None:
    """Unescaped, each of these would match alice (or everyone): escaped, nobody."""
    assert directory.find_user(name) is None


def test_non_ascii_names_pass_as_utf8(directory: Directory) -> None:
    entry = directory.find_user("jürgen")
    assert entry is not None
    assert directory.check_password(entry.dn, PASSWORDS["jürgen"], _nothing)
    assert directory.find_user("jurgen") is None


def test_empty_password_is_no_bind(directory: Directory, slapd: Slapd) -> None:
    entry = directory.find_user("alice")
    assert entry is not None
    before_trips, before_log = directory.round_trips, slapd.operations()
    called: list[int] = []
    assert not directory.check_password(entry.dn, "", lambda: called.append(1))
    assert directory.round_trips == before_trips
    assert slapd.operations() == before_log
    assert called == []  # not even counted: nothing was tried


def test_disabled_user_is_filtered_out(own_slapd: Slapd) -> None:
    directory = Directory(ldap_config(own_slapd))
    try:
        assert directory.find_user("erin") is not None
        own_slapd.modify(
            f"dn: uid=erin,ou=people,{SUFFIX}\nchangetype: modify\nadd: employeeType\n"
            "employeeType: disabled\n"
        )
        assert directory.find_user("erin") is None
    finally:
        directory.close()


def test_groups_by_full_dn(directory: Directory) -> None:
    """Two groups named devs in different OUs are two groups."""
    alice = directory.find_user("alice")
    bob = directory.find_user("bob")
    assert alice is not None
    assert bob is not None
    assert directory.groups(alice, "alice") == {normalize_dn(DEVS)}
    assert directory.groups(bob, "bob") == {normalize_dn(TEAM_DEVS)}


def test_groups_from_memberof(slapd: Slapd) -> None:
    directory = Directory(
        ldap_config(slapd, groupfilter=None, groupbase=None, groupattribute="memberOf")
    )
    try:
        carol = directory.find_user("carol")
        assert carol is not None
        assert directory.groups(carol, "carol") == {normalize_dn(ADMINS)}
    finally:
        directory.close()


@pytest.mark.parametrize("mode", ["filter", "memberOf"])
def test_nested_groups_recursive_and_cycle_safe(slapd: Slapd, mode: str) -> None:
    extra = (
        {"groupfilter": None, "groupbase": None, "groupattribute": "memberOf"}
        if mode == "memberOf"
        else {}
    )
    flat = Directory(ldap_config(slapd, **extra))
    nested = Directory(ldap_config(slapd, nestedgroups="recursive", **extra))
    shallow = Directory(ldap_config(slapd, nestedgroups="recursive", nestingdepth=1, **extra))
    try:
        dave = flat.find_user("dave")
        assert dave is not None
        assert flat.groups(dave, "dave") == {normalize_dn(BACKEND), normalize_dn(LOOP_A)}
        # backend -> engineering -> company; loop-a <-> loop-b ends where it started.
        assert nested.groups(dave, "dave") == {
            normalize_dn(g) for g in (BACKEND, ENGINEERING, COMPANY, LOOP_A, LOOP_B)
        }
        assert shallow.groups(dave, "dave") == {
            normalize_dn(g) for g in (BACKEND, ENGINEERING, LOOP_A, LOOP_B)
        }
    finally:
        for d in (flat, nested, shallow):
            d.close()


@pytest.mark.parametrize(
    ("attributes", "disabled"),
    [
        ({}, False),
        ({"userAccountControl": [b"512"]}, False),  # NORMAL_ACCOUNT
        ({"userAccountControl": [b"514"]}, True),  # NORMAL_ACCOUNT | ACCOUNTDISABLE
        ({"useraccountcontrol": [b"66050"]}, True),  # any case; + DONT_EXPIRE_PASSWORD
        ({"userAccountControl": [b"junk"]}, False),
        ({"pwdAccountLockedTime": [b"000001010000Z"]}, True),  # OpenLDAP ppolicy lock
    ],
)
def test_entry_disabled(attributes: dict[str, list[bytes]], disabled: bool) -> None:
    assert Entry("uid=x", attributes).disabled is disabled


def test_normalize_dn() -> None:
    assert (
        normalize_dn("CN=Devs, OU=Groups,DC=Example,DC=com")
        == "cn=devs,ou=groups,dc=example,dc=com"
    )
    assert normalize_dn("not a dn") == "not a dn"


@pytest.mark.parametrize("variant", ["starttls", "ldaps"])
def test_tls_with_a_ca_made_here(slapd: Slapd, variant: str) -> None:
    url = slapd.url if variant == "starttls" else slapd.ldaps_url
    directory = Directory(
        ldap_config(slapd, url=url, starttls=variant == "starttls", cacert=str(slapd.ca))
    )
    try:
        entry = directory.find_user("alice")
        assert entry is not None
        assert directory.check_password(entry.dn, PASSWORDS["alice"], _nothing)
    finally:
        directory.close()


@pytest.mark.parametrize("variant", ["starttls", "ldaps"])
def test_tls_refuses_a_server_the_ca_did_not_sign(
    slapd: Slapd, variant: str, tmp_path: Path
) -> None:
    other_ca, _, _ = make_ca(tmp_path)
    url = slapd.url if variant == "starttls" else slapd.ldaps_url
    directory = Directory(
        ldap_config(slapd, url=url, starttls=variant == "starttls", cacert=str(other_ca))
    )
    try:
        with pytest.raises(IdentityUnavailable):
            directory.find_user("alice")
    finally:
        directory.close()


def test_pool_reuses_connections_in_parallel(slapd: Slapd) -> None:
    directory = Directory(ldap_config(slapd, poolsize=3))
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            found = list(pool.map(lambda _: directory.find_user("alice"), range(40)))
        assert all(e is not None for e in found)
        assert 1 <= directory._service.opened <= 3
        binds = [e for e in found if e is not None]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ok = list(
                pool.map(
                    lambda e: directory.check_password(e.dn, PASSWORDS["alice"], _nothing), binds
                )
            )
        assert all(ok)
        assert 1 <= directory._binds.opened <= 3
    finally:
        directory.close()


def test_directory_down_is_unavailable(own_slapd: Slapd) -> None:
    directory = Directory(ldap_config(own_slapd))
    try:
        assert directory.find_user("alice") is not None
        own_slapd.kill()
        with pytest.raises(IdentityUnavailable):
            directory.find_user("alice")
        with pytest.raises(IdentityUnavailable):
            directory.check_password(f"uid=alice,ou=people,{SUFFIX}", "x", _nothing)
        # ... and back: the pool drops dead connections and opens new ones.
        own_slapd.start()
        assert directory.find_user("alice") is not None
    finally:
        directory.close()


def test_a_restart_leaves_no_dead_connections_behind(own_slapd: Slapd) -> None:
    directory = Directory(ldap_config(own_slapd, poolsize=3))
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            assert all(pool.map(lambda _: directory.find_user("alice"), range(30)))
        own_slapd.stop()
        own_slapd.start()
        for _ in range(3):  # each would meet a dead pooled connection without the drain
            assert directory.find_user("alice") is not None
    finally:
        directory.close()


def test_a_stalled_directory_times_out(own_slapd: Slapd) -> None:
    """slapd stopped (SIGSTOP): connections are accepted, nothing answers."""
    directory = Directory(ldap_config(own_slapd, timeout=1))
    try:
        assert directory.find_user("alice") is not None
        assert own_slapd.process is not None
        own_slapd.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(IdentityUnavailable):
                directory.find_user("alice")
            with pytest.raises(IdentityUnavailable):
                directory.check_password(f"uid=alice,ou=people,{SUFFIX}", "x", _nothing)
        finally:
            own_slapd.process.send_signal(signal.SIGCONT)
        assert directory.find_user("alice") is not None
    finally:
        directory.close()


def test_nothing_listening_is_unavailable(slapd: Slapd) -> None:
    directory = Directory(ldap_config(slapd, url=f"ldap://127.0.0.1:{free_port()}", timeout=1))
    try:
        with pytest.raises(IdentityUnavailable):
            directory.probe()
    finally:
        directory.close()


def test_wrong_service_password_is_unavailable(slapd: Slapd, tmp_path: Path) -> None:
    wrong = tmp_path / "pw"
    wrong.write_text("nope\n")
    directory = Directory(ldap_config(slapd, bindpasswordfile=str(wrong)))
    try:
        with pytest.raises(IdentityUnavailable, match="service bind"):
            directory.find_user("alice")
    finally:
        directory.close()
