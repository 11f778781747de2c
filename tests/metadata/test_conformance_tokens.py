"""Metadata conformance, part 2: access tokens, refresh tokens and the audit trail.

Every test runs on SQLite and on PostgreSQL (the ``dsn`` fixture in conftest.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from hatchway.metadata import (
    AuditEvent,
    ConflictError,
    InvalidNameError,
    MetadataStore,
    NotFoundError,
    Outcome,
)
from hatchway.metadata.audit import REDACTED
from hatchway.metadata.records import utcnow
from tests.metadata.factories import HASH, NOW, make_token, th

# -- access tokens -------------------------------------------------------------------


def test_access_token_lookup(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash=HASH)
    store.accounts.create_group("devs")
    store.accounts.add_member("devs", "alice")
    made = store.tokens.create(
        "alice",
        name="ci",
        token_hash=th("s"),
        scopes=["repository:alice/*:pull,push"],
        expires_at=NOW + timedelta(days=1),
    )
    assert made.account == "alice"
    assert made.scopes == ("repository:alice/*:pull,push",)
    assert made.active()
    assert made.last_used_at is None
    found = store.tokens.find_active(th("s"))
    assert found is not None
    token, account = found
    assert token == made
    assert account.name == "alice"
    assert account.groups == {"devs"}
    assert store.tokens.find_active(th("other")) is None


def test_inactive_tokens_are_not_found(store: MetadataStore) -> None:
    store.accounts.create("alice")
    expired = make_token(store, "alice", "old", expires_at=NOW - timedelta(seconds=1))
    revoked = make_token(store, "alice", "gone")
    store.tokens.revoke("alice", str(revoked))
    assert store.tokens.find_active(th("aliceold")) is None
    assert store.tokens.find_active(th("alicegone")) is None
    assert store.tokens.list("alice") == []
    assert {t.id for t in store.tokens.list("alice", include_inactive=True)} == {expired, revoked}


def test_token_names_and_revoke(store: MetadataStore) -> None:
    store.accounts.create("alice")
    store.accounts.create("bob")
    first = make_token(store, "alice")
    make_token(store, "bob")  # another account may use the same name
    with pytest.raises(ConflictError):
        store.tokens.create("alice", name="ci", token_hash=th("x"), scopes=[], expires_at=None)
    with pytest.raises(InvalidNameError):
        store.tokens.create("alice", name="123", token_hash=th("y"), scopes=[], expires_at=None)
    with pytest.raises(NotFoundError):
        store.tokens.create("nobody", name="ci", token_hash=th("z"), scopes=[], expires_at=None)
    with pytest.raises(NotFoundError):
        store.tokens.revoke("bob", str(first))  # not bob's
    revoked = store.tokens.revoke("alice", "ci")
    assert revoked.id == first
    assert revoked.revoked_at is not None
    assert not revoked.active()
    again = store.tokens.create("alice", name="ci", token_hash=th("n"), scopes=[], expires_at=None)
    assert again.id != first  # the name is free once revoked
    assert store.tokens.revoke("alice", str(first)).revoked_at == revoked.revoked_at
    with pytest.raises(NotFoundError):
        store.tokens.revoke("alice", "nope")
    with pytest.raises(NotFoundError):
        store.tokens.revoke("nobody", "ci")
    assert [(t.account, t.name) for t in store.tokens.list()] == [("alice", "ci"), ("bob", "ci")]


def test_token_use_recorded_once_per_interval(store: MetadataStore) -> None:
    store.accounts.create("alice")
    tid = make_token(store, "alice")
    assert store.tokens.touch(tid, "10.0.0.1") is True
    assert store.tokens.touch(tid, "10.0.0.2") is False
    token = store.tokens.get(tid)
    assert token is not None
    assert token.last_used_addr == "10.0.0.1"
    assert token.last_used_at is not None
    assert abs(token.last_used_at - utcnow()) < timedelta(minutes=5)
    assert store.tokens.touch(tid, "10.0.0.3", interval=0) is True
    assert store.tokens.touch(tid + 100, "x") is False


# -- refresh tokens ------------------------------------------------------------------


def test_refresh_tokens(store: MetadataStore) -> None:
    rt = store.refresh_tokens
    a = rt.create("alice", backend="local", client_id="docker", token_hash=th("a"))
    rt.create("alice", backend="htpasswd", client_id="docker", token_hash=th("b"))
    old = rt.create(
        "bob", backend="local", client_id="x", token_hash=th("c"), expires_at=NOW - timedelta(1)
    )
    assert rt.find_active(th("a")) == a
    assert a.active()
    assert a.access_token_id is None
    assert rt.find_active(th("c")) is None
    assert not old.active()
    assert rt.touch(a.id, "::1")
    assert not rt.touch(a.id, "::1")
    found = rt.find_active(th("a"))
    assert found is not None
    assert found.last_used_addr == "::1"
    assert rt.revoke(a.id)
    assert not rt.revoke(a.id)
    assert rt.find_active(th("a")) is None
    assert rt.revoke_subject("alice", "local") == 0
    assert rt.revoke_subject("alice") == 1
    assert rt.list() == []
    assert len(rt.list(include_inactive=True)) == 3


def test_refresh_token_binding_and_address(store: MetadataStore) -> None:
    rt = store.refresh_tokens
    made = rt.create(
        "carol",
        backend="htpasswd",
        client_id="docker",
        token_hash=th("d"),
        binding="ab" * 32,
        created_addr="192.0.2.9",
    )
    found = rt.find_active(th("d"))
    assert found == made
    assert found.binding == "ab" * 32
    assert found.created_addr == "192.0.2.9"
    assert "ab" * 32 not in repr(found)


def test_columns_added_later_are_added_to_an_existing_database(dsn: str) -> None:
    """A database made before refresh_tokens had its binding and address columns."""
    first = MetadataStore(dsn)
    with first.db.write() as conn:
        for column in ("binding", "created_addr"):
            conn.execute(text(f"ALTER TABLE refresh_tokens DROP COLUMN {column}"))
    first.dispose()
    reopened = MetadataStore(dsn)
    try:
        made = reopened.refresh_tokens.create(
            "dave", backend="htpasswd", client_id="x", token_hash=th("e"), binding="cd" * 32
        )
        assert made.binding == "cd" * 32
        MetadataStore(dsn).dispose()  # opening again finds nothing left to add
    finally:
        reopened.dispose()


# -- audit ---------------------------------------------------------------------------


def test_audit_round_trip_and_filters(store: MetadataStore) -> None:
    store.audit.record(
        AuditEvent(
            event="token.grant",
            outcome=Outcome.SUCCESS,
            account="alice",
            client_addr="192.0.2.1",
            user_agent="docker/27",
            repository="alice/app",
            scopes_requested=("repository:alice/app:pull,push",),
            scopes_granted=("repository:alice/app:pull",),
            detail={"service": "hatchway", "n": 1, "nested": {"ok": [1, "x"]}},
        )
    )
    store.audit.record_many(
        [AuditEvent(event="login", outcome="failure", account=f"u{i}") for i in range(3)]
    )
    newest = store.audit.list()
    assert [e.account for e in newest] == ["u2", "u1", "u0", "alice"]
    grant = store.audit.list(account="alice")[0]
    assert grant.event == "token.grant"
    assert grant.outcome == "success"
    assert grant.client_addr == "192.0.2.1"
    assert grant.user_agent == "docker/27"
    assert grant.repository == "alice/app"
    assert grant.scopes_requested == ("repository:alice/app:pull,push",)
    assert grant.scopes_granted == ("repository:alice/app:pull",)
    assert grant.detail == {"service": "hatchway", "n": 1, "nested": {"ok": [1, "x"]}}
    assert grant.time.tzinfo is not None
    assert len(store.audit.list(event="login")) == 3
    assert len(store.audit.list(limit=2)) == 2
    assert store.audit.list(since=NOW + timedelta(hours=1)) == []
    assert store.audit.purge(NOW + timedelta(hours=1)) == 4
    assert store.audit.list() == []


def test_audit_ids_in_order_and_counts_updated_in_place(store: MetadataStore) -> None:
    events = [AuditEvent("login", "failure", f"u{i}", "192.0.2.9") for i in range(3)]
    ids = store.audit.write_batch(events)
    assert len(set(ids)) == 3
    assert [store.audit.list(account=f"u{i}")[0].id for i in range(3)] == ids
    later = store.audit.write_batch(
        [AuditEvent("login", "throttled", "u0")],
        {ids[1]: {"count": 7, "last": "2026-11-23T10:00:00Z", "password": "x"}},
    )
    assert len(later) == 1
    assert later[0] not in ids
    (updated,) = store.audit.list(account="u1")
    assert updated.detail == {"count": 7, "last": "2026-11-23T10:00:00Z", "password": REDACTED}
    assert store.audit.list(account="u2")[0].detail == {}
    assert store.audit.write_batch([]) == []


def test_audit_purge_in_batches(store: MetadataStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hatchway.metadata.audit.PURGE_BATCH", 4)
    old = [AuditEvent("pull", "success", time=NOW - timedelta(days=100 + i)) for i in range(9)]
    store.audit.record_many([*old, AuditEvent("push", "success", time=NOW)])
    cutoff = NOW - timedelta(days=90)
    assert store.audit.count_before(cutoff) == 9
    assert store.audit.purge(cutoff) == 9
    assert store.audit.count_before(cutoff) == 0
    assert [e.event for e in store.audit.list()] == ["push"]
    assert store.audit.purge(cutoff) == 0


def test_audit_never_stores_secrets(store: MetadataStore) -> None:
    secret = "hw_" + "S" * 43
    store.audit.record(
        AuditEvent(
            event="login",
            outcome=Outcome.FAILURE,
            user_agent="x" * 2000,
            detail={
                "password": "hunter2",
                "refresh_token": "abc",
                "Authorization": "Basic eA==",
                "note": f"tried {secret}",
                "jwt": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.sig",
                "token_id": 7,
            },
        )
    )
    (event,) = store.audit.list()
    assert event.detail["password"] == REDACTED
    assert event.detail["refresh_token"] == REDACTED
    assert event.detail["Authorization"] == REDACTED
    assert event.detail["token_id"] == 7
    assert secret not in event.detail["note"]
    assert "eyJzdWIiOiJhIn0" not in event.detail["jwt"]
    assert event.user_agent is not None
    assert len(event.user_agent) == 512
