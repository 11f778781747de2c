"""Web UI sessions on a real store: only a hash is kept, idle and absolute expiry, the
binding to the password (change, reset, delete, disable end sessions), ending one's own
sessions only, and CSRF tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import bcrypt
import pytest
from sqlalchemy import select, update

from hatchway.auth.credentials.passwords import hash_password
from hatchway.auth.credentials.pat import secret_hash
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.identity.htpasswd import HtpasswdAuthenticator
from hatchway.auth.identity.local import LocalAuthenticator, account_principal
from hatchway.auth.websession import (
    SignedIn,
    WebSessions,
    csrf_matches,
    csrf_token,
    new_pre_session,
)
from hatchway.metadata import AccountKind, MetadataStore
from hatchway.metadata.records import utcnow
from hatchway.metadata.tables import web_sessions

CLIENT = ClientInfo("192.0.2.7", "browser/1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    found = MetadataStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    found.accounts.create("alice", password_hash=hash_password("pw-alice"))
    found.accounts.create("bob", password_hash=hash_password("pw-bob"))
    yield found
    found.dispose()


@pytest.fixture
def sessions(store: MetadataStore) -> WebSessions:
    return WebSessions(store, [LocalAuthenticator(store)])


def start(store: MetadataStore, sessions: WebSessions, name: str = "alice") -> SignedIn:
    account = store.accounts.require(name)
    return sessions.start(account_principal(account), "local", CLIENT)


def test_only_a_hash_is_stored_and_the_secret_resolves(
    store: MetadataStore, sessions: WebSessions
) -> None:
    started = start(store, sessions)
    assert started.secret.startswith("hws_")
    with store.db.read() as conn:
        rows = conn.execute(select(web_sessions)).all()
    assert len(rows) == 1
    assert rows[0].session_hash == secret_hash(started.secret)
    assert started.secret not in str(tuple(rows[0]))
    found = sessions.resolve(started.secret, CLIENT)
    assert found is not None
    assert found.principal.subject == "alice"
    assert found.session.created_addr == "192.0.2.7"
    assert sessions.resolve(started.secret + "x", CLIENT) is None
    assert sessions.resolve("hws_" + "A" * 43, CLIENT) is None
    assert sessions.resolve("", CLIENT) is None


def test_idle_and_absolute_expiry(store: MetadataStore, sessions: WebSessions) -> None:
    idle = start(store, sessions)
    old = start(store, sessions)
    with store.db.write() as conn:
        conn.execute(
            update(web_sessions)
            .where(web_sessions.c.id == idle.session.id)
            .values(last_seen_at=utcnow() - sessions.idle - timedelta(seconds=1))
        )
        conn.execute(
            update(web_sessions)
            .where(web_sessions.c.id == old.session.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert sessions.resolve(idle.secret, CLIENT) is None
    assert sessions.resolve(old.secret, CLIENT) is None
    assert sessions.sessions("alice") == []


@pytest.mark.parametrize("change", ["password", "delete", "disable"])
def test_a_changed_account_ends_its_sessions(
    store: MetadataStore, sessions: WebSessions, change: str
) -> None:
    started = start(store, sessions)
    other = start(store, sessions, "bob")
    if change == "password":
        store.accounts.set_password("alice", hash_password("new-pw"))
    elif change == "delete":
        store.accounts.delete("alice")
    else:
        store.accounts.set_disabled("alice", True)
    assert sessions.resolve(started.secret, CLIENT) is None
    assert sessions.resolve(other.secret, CLIENT) is not None
    if change == "disable":
        store.accounts.set_disabled("alice", False)
        assert sessions.resolve(started.secret, CLIENT) is None  # ended for good


def test_admin_flag_changes_apply_at_once(store: MetadataStore, sessions: WebSessions) -> None:
    started = start(store, sessions)
    store.accounts.set_admin("alice", True)
    found = sessions.resolve(started.secret, CLIENT)
    assert found is not None
    assert found.principal.admin


def test_owners_end_only_their_own_sessions(store: MetadataStore, sessions: WebSessions) -> None:
    first, second = start(store, sessions), start(store, sessions)
    bobs = start(store, sessions, "bob")
    assert [s.id for s in sessions.sessions("alice")] == [second.session.id, first.session.id]
    assert not sessions.end_one("alice", bobs.session.id)
    assert sessions.resolve(bobs.secret, CLIENT) is not None
    assert sessions.end_one("alice", first.session.id)
    assert sessions.resolve(first.secret, CLIENT) is None
    assert sessions.end(second.secret) is not None
    assert sessions.end(second.secret) is None
    assert sessions.resolve(second.secret, CLIENT) is None


def test_tokens_and_robots_cannot_start_sessions(
    store: MetadataStore, sessions: WebSessions
) -> None:
    store.accounts.create("robo", kind=AccountKind.ROBOT)
    with pytest.raises(ValueError, match="password"):
        sessions.start(account_principal(store.accounts.require("robo")), "local", CLIENT)
    principal = account_principal(store.accounts.require("alice"))
    with pytest.raises(ValueError, match="password"):
        sessions.start(replace(principal, token_id="1"), "local", CLIENT)


def test_csrf_tokens() -> None:
    seed, other = new_pre_session(), new_pre_session()
    token = csrf_token(seed)
    assert csrf_matches(seed, token)
    assert not csrf_matches(other, token)
    assert not csrf_matches(seed, token[:-1])
    assert not csrf_matches(seed, "")
    assert not csrf_matches(None, token)
    assert not csrf_matches(seed, None)
    assert not csrf_matches(seed, "x" * 10_000)


def test_ended_sessions_are_forgotten_after_a_week(
    store: MetadataStore, sessions: WebSessions
) -> None:
    old = start(store, sessions)
    sessions.end(old.secret)
    with store.db.write() as conn:
        conn.execute(
            update(web_sessions)
            .where(web_sessions.c.id == old.session.id)
            .values(revoked_at=utcnow() - timedelta(days=8))
        )
    start(store, sessions)
    with store.db.read() as conn:
        ids = [r.id for r in conn.execute(select(web_sessions.c.id))]
    assert old.session.id not in ids
    assert len(ids) == 1


def test_htpasswd_sessions_end_when_the_line_changes(tmp_path: Path, store: MetadataStore) -> None:
    path = tmp_path / "htpasswd"

    def write(password: str) -> None:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
        path.write_text(f"carol:{hashed}\n")

    write("pw-one")
    htpasswd = HtpasswdAuthenticator(path, check_interval=0)
    sessions = WebSessions(store, [LocalAuthenticator(store), htpasswd])
    principal = htpasswd.authenticate("carol", "pw-one", CLIENT)
    assert principal is not None
    started = sessions.start(principal, "htpasswd", CLIENT)
    assert sessions.resolve(started.secret, CLIENT) is not None
    write("pw-two")  # a new line: another hash, and so another size or mtime
    assert sessions.resolve(started.secret, CLIENT) is None
