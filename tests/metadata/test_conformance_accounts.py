"""Metadata conformance, part 1: accounts, groups, schema and concurrency.

Every test runs on SQLite and on PostgreSQL (the ``dsn`` fixture in conftest.py).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from hatchway.metadata import (
    AccountKind,
    AuditEvent,
    ConflictError,
    InvalidNameError,
    MetadataError,
    MetadataStore,
    NotFoundError,
)
from hatchway.metadata.records import utcnow
from tests.metadata.factories import HASH, make_token, th

# -- accounts ------------------------------------------------------------------------


def test_create_and_get_user(store: MetadataStore) -> None:
    made = store.accounts.create("alice", password_hash=HASH, admin=True)
    got = store.accounts.get("alice")
    assert got == made
    assert got.kind is AccountKind.USER
    assert got.admin
    assert got.groups == frozenset()
    assert got.password_hash == HASH
    assert HASH not in repr(got)
    assert got.created_at.tzinfo is not None
    assert abs(got.created_at - utcnow()) < timedelta(minutes=5)
    assert store.accounts.get("nobody") is None
    with pytest.raises(NotFoundError):
        store.accounts.require("nobody")


def test_account_names(store: MetadataStore) -> None:
    store.accounts.create("a.b-c_d@example.com")
    with pytest.raises(ConflictError):
        store.accounts.create("a.b-c_d@example.com")
    for bad in ["", "has space", "colon:name", "-lead", "x" * 129, "é"]:
        with pytest.raises(InvalidNameError):
            store.accounts.create(bad)


def test_robots_have_no_password(store: MetadataStore) -> None:
    robot = store.accounts.create("bot", kind=AccountKind.ROBOT)
    assert robot.robot
    assert robot.password_hash is None
    with pytest.raises(MetadataError):
        store.accounts.create("bot2", kind=AccountKind.ROBOT, password_hash=HASH)
    with pytest.raises(MetadataError, match="robot"):
        store.accounts.set_password("bot", HASH)


def test_list_accounts_with_groups(store: MetadataStore) -> None:
    for name in ["carol", "alice", "bob"]:
        store.accounts.create(name)
    store.accounts.create_group("devs")
    store.accounts.create_group("ops")
    store.accounts.add_member("devs", "alice")
    store.accounts.add_member("ops", "alice")
    found = store.accounts.list()
    assert [a.name for a in found] == ["alice", "bob", "carol"]
    assert found[0].groups == {"devs", "ops"}
    assert found[1].groups == frozenset()
    assert store.accounts.require("alice").groups == {"devs", "ops"}


def test_accounts_page_by_name_with_groups_whole(store: MetadataStore) -> None:
    for name in ["dave", "alice", "carol", "bob", "erin"]:
        store.accounts.create(name)
    for group in ["devs", "ops", "qa"]:
        store.accounts.create_group(group)
        store.accounts.add_member(group, "bob")  # three joined rows for one account
    first, last = store.accounts.page(2)
    assert [a.name for a in first] == ["alice", "bob"]
    assert first[1].groups == {"devs", "ops", "qa"}
    assert last == "bob"
    second, last = store.accounts.page(2, last)
    assert [a.name for a in second] == ["carol", "dave"]
    third, last = store.accounts.page(2, last)
    assert ([a.name for a in third], last) == (["erin"], None)
    assert store.accounts.page(5) == (store.accounts.list(), None)
    assert store.accounts.page(3, "erin") == ([], None)


def test_set_password_and_admin(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    before = store.accounts.require("alice").password_changed_at
    store.accounts.set_password("alice", HASH.replace("a", "b"))
    after = store.accounts.require("alice")
    assert after.password_hash == HASH.replace("a", "b")
    assert before is not None
    assert after.password_changed_at is not None
    assert after.password_changed_at >= before
    store.accounts.set_admin("alice", True)
    assert store.accounts.require("alice").admin
    with pytest.raises(NotFoundError):
        store.accounts.set_password("nobody", HASH)
    with pytest.raises(NotFoundError):
        store.accounts.set_admin("nobody", True)


def test_password_change_ends_password_sessions_only(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    pat = make_token(store, "alice")
    rt = store.refresh_tokens
    by_password = rt.create("alice", backend="local", client_id="docker", token_hash=th("1"))
    by_pat = rt.create(
        "alice", backend="local", client_id="docker", token_hash=th("2"), access_token_id=pat
    )
    other = rt.create("alice", backend="htpasswd", client_id="docker", token_hash=th("3"))
    store.accounts.set_password("alice", HASH)
    assert rt.find_active(th("1")) is None
    assert {t.id for t in rt.list("alice")} == {by_pat.id, other.id}
    assert by_password.id not in {t.id for t in rt.list("alice")}


def test_delete_account_cascades(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    store.accounts.create_group("devs")
    store.accounts.add_member("devs", "alice")
    pat = make_token(store, "alice")
    store.refresh_tokens.create("alice", backend="local", client_id="d", token_hash=th("r1"))
    store.refresh_tokens.create(
        "x", backend="local", client_id="d", token_hash=th("r2"), access_token_id=pat
    )
    store.accounts.delete("alice")
    assert store.accounts.get("alice") is None
    assert store.tokens.get(pat) is None
    assert store.refresh_tokens.list(include_inactive=True) == []
    assert store.accounts.list_groups()[0].members == ()
    with pytest.raises(NotFoundError):
        store.accounts.delete("alice")
    store.accounts.create("alice")  # the name is free again
    assert store.accounts.require("alice").groups == frozenset()


# -- groups --------------------------------------------------------------------------


def test_groups(store: MetadataStore) -> None:
    store.accounts.create("alice")
    store.accounts.create("bob")
    store.accounts.create_group("devs")
    store.accounts.create_group("empty")
    with pytest.raises(ConflictError):
        store.accounts.create_group("devs")
    with pytest.raises(InvalidNameError):
        store.accounts.create_group("no/slash")
    assert store.accounts.add_member("devs", "bob") is True
    assert store.accounts.add_member("devs", "alice") is True
    assert store.accounts.add_member("devs", "alice") is False
    groups = {g.name: g.members for g in store.accounts.list_groups()}
    assert groups == {"devs": ("alice", "bob"), "empty": ()}
    assert store.accounts.remove_member("devs", "bob") is True
    assert store.accounts.remove_member("devs", "bob") is False
    with pytest.raises(NotFoundError):
        store.accounts.add_member("nogroup", "alice")
    with pytest.raises(NotFoundError):
        store.accounts.add_member("devs", "nobody")
    store.accounts.delete_group("devs")
    assert [g.name for g in store.accounts.list_groups()] == ["empty"]
    assert store.accounts.require("alice").groups == frozenset()
    with pytest.raises(NotFoundError):
        store.accounts.delete_group("devs")


# -- schema and concurrency ----------------------------------------------------------


def test_second_store_on_same_database(store: MetadataStore, dsn: str) -> None:
    store.accounts.create("alice")
    other = MetadataStore(dsn)  # create_all again: a no-op
    try:
        assert other.accounts.require("alice").name == "alice"
    finally:
        other.dispose()


def test_concurrent_writers(store: MetadataStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                store.accounts.create(f"u{n}-{i}")
                store.audit.record(AuditEvent(event="user.add", outcome="success"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.accounts.list()) == 60
    assert len(store.audit.list(limit=1000)) == 60
