"""The built-in store's authenticator: passwords, access tokens, robots, refresh tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from hatchway.auth.access import Access, Resource
from hatchway.auth.credentials.passwords import hash_password
from hatchway.auth.credentials.pat import create_token, new_secret, secret_hash
from hatchway.auth.credentials.refresh import issue_refresh_token, redeem_refresh_token
from hatchway.auth.identity.base import Authenticator, ClientInfo
from hatchway.auth.identity.local import ACCOUNT_TTL, LocalAuthenticator
from hatchway.auth.principal import Kind
from hatchway.metadata import AccountKind, MetadataStore
from hatchway.metadata.records import utcnow
from tests.unit.auth.accounts_support import fast_bcrypt, new_store, verifier

CLIENT = ClientInfo("192.0.2.7", "docker/27.0")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MetadataStore]:
    fast_bcrypt(monkeypatch)
    opened = new_store(tmp_path)
    opened.accounts.create("alice", password_hash=hash_password("s3cret"), admin=True)
    opened.accounts.create_group("devs")
    opened.accounts.add_member("devs", "alice")
    opened.accounts.create("bot", kind=AccountKind.ROBOT)
    yield opened
    opened.dispose()


@pytest.fixture
def auth(store: MetadataStore) -> LocalAuthenticator:
    return LocalAuthenticator(store, verifier=verifier())


def test_is_an_authenticator(auth: LocalAuthenticator) -> None:
    checked: Authenticator = auth
    assert checked.backend == "local"


def test_password(auth: LocalAuthenticator) -> None:
    principal = auth.authenticate("alice", "s3cret", CLIENT)
    assert principal is not None
    assert principal.subject == "alice"
    assert principal.kind is Kind.USER
    assert principal.admin
    assert principal.groups == {"devs"}
    assert principal.token_scopes is None
    assert principal.token_id is None
    assert auth.authenticate("alice", "wrong", CLIENT) is None
    assert auth.authenticate("Alice", "s3cret", CLIENT) is None
    assert auth.authenticate("alice", "", CLIENT) is None
    assert auth.authenticate("", "s3cret", CLIENT) is None


def test_returning_user_skips_bcrypt(auth: LocalAuthenticator, store: MetadataStore) -> None:
    assert auth.authenticate("alice", "s3cret", CLIENT) is not None
    checks = auth.verifier.checks
    for _ in range(5):
        assert auth.authenticate("alice", "s3cret", CLIENT) is not None
    assert auth.verifier.checks == checks
    # Changed by another process (the CLI): once the account row is read again (it is
    # remembered for ACCOUNT_TTL), the cached success no longer counts.
    store.accounts.set_password("alice", hash_password("n3w"))
    time.sleep(ACCOUNT_TTL + 0.05)
    assert auth.authenticate("alice", "s3cret", CLIENT) is None
    assert auth.authenticate("alice", "n3w", CLIENT) is not None


def test_unknown_user_runs_bcrypt(auth: LocalAuthenticator) -> None:
    before = auth.verifier.checks
    assert auth.authenticate("nobody", "s3cret", CLIENT) is None
    assert auth.verifier.checks == before + 1


def test_personal_access_token(auth: LocalAuthenticator, store: MetadataStore) -> None:
    token, secret = create_token(
        store,
        "alice",
        name="ci",
        scopes=["repository:alice/*:pull,push"],
        lifetime=timedelta(days=30),
    )
    checks = auth.verifier.checks
    principal = auth.authenticate("alice", secret, CLIENT)
    assert principal is not None
    assert auth.verifier.checks == checks
    assert principal.subject == "alice"
    assert principal.groups == {"devs"}
    assert principal.admin
    assert principal.token_id == str(token.id)
    assert principal.token_scopes == (
        Access(Resource("repository", "alice/*"), frozenset({"pull", "push"})),
    )
    assert auth.authenticate("bot", secret, CLIENT) is None  # someone else's name
    used = store.tokens.get(token.id)
    assert used is not None
    assert used.last_used_addr == "192.0.2.7"
    assert auth.authenticate("alice", secret, ClientInfo("198.51.100.1")) is not None
    again = store.tokens.get(token.id)
    assert again is not None
    assert again.last_used_addr == "192.0.2.7"
    assert again.last_used_at == used.last_used_at


def test_expired_and_revoked_tokens(auth: LocalAuthenticator, store: MetadataStore) -> None:
    expired = new_secret()
    store.tokens.create(
        "alice",
        name="old",
        token_hash=secret_hash(expired),
        scopes=["repository:a:pull"],
        expires_at=utcnow() - timedelta(seconds=1),
    )
    assert auth.authenticate("alice", expired, CLIENT) is None
    _, secret = create_token(store, "alice", name="ci", scopes=["repository:a:pull"], lifetime=None)
    assert auth.authenticate("alice", secret, CLIENT) is not None
    store.tokens.revoke("alice", "ci")
    assert auth.authenticate("alice", secret, CLIENT) is None
    assert auth.authenticate("alice", new_secret(), CLIENT) is None  # unknown token


def test_robot(auth: LocalAuthenticator, store: MetadataStore) -> None:
    before = auth.verifier.checks
    assert auth.authenticate("bot", "", CLIENT) is None
    assert auth.authenticate("bot", "anything", CLIENT) is None
    assert auth.verifier.checks == before + 1  # the dummy hash, as for an unknown user
    _, secret = create_token(
        store, "bot", name="deploy", scopes=["repository:team/*:pull"], lifetime=None
    )
    principal = auth.authenticate("bot", secret, CLIENT)
    assert principal is not None
    assert principal.kind is Kind.ROBOT
    assert principal.token_scopes is not None
    assert principal.token_scopes[0].resource.name == "team/*"


def test_resolve(auth: LocalAuthenticator, store: MetadataStore) -> None:
    principal = auth.resolve("alice")
    assert principal is not None
    assert principal.groups == {"devs"}
    assert auth.resolve("nobody") is None
    assert auth.resolve("bot") is None  # robots exist only through a token
    token, _ = create_token(store, "bot", name="t", scopes=["repository:x:pull"], lifetime=None)
    robot = auth.resolve("bot", str(token.id))
    assert robot is not None
    assert robot.kind is Kind.ROBOT
    assert robot.token_id == str(token.id)
    assert auth.resolve("alice", str(token.id)) is None  # not alice's token
    assert auth.resolve("bot", "x") is None


def test_refresh_token_by_password(auth: LocalAuthenticator, store: MetadataStore) -> None:
    principal = auth.authenticate("alice", "s3cret", CLIENT)
    assert principal is not None
    record, secret = issue_refresh_token(store, principal, backend="local", client_id="docker")
    assert secret.startswith("hwr_")
    assert record.expires_at is not None
    again = redeem_refresh_token(store, secret, auth, CLIENT)
    assert again == principal
    assert redeem_refresh_token(store, secret, auth, CLIENT) == principal  # not rotated
    assert store.refresh_tokens.list("alice")[0].last_used_addr == "192.0.2.7"
    assert redeem_refresh_token(store, secret + "x", auth, CLIENT) is None
    store.accounts.set_password("alice", hash_password("n3w"))
    assert redeem_refresh_token(store, secret, auth, CLIENT) is None


def test_refresh_token_keeps_token_limits(auth: LocalAuthenticator, store: MetadataStore) -> None:
    _, pat = create_token(
        store, "alice", name="ci", scopes=["repository:alice/*:pull"], lifetime=None
    )
    principal = auth.authenticate("alice", pat, CLIENT)
    assert principal is not None
    _, secret = issue_refresh_token(store, principal, backend="local", client_id="docker")
    refreshed = redeem_refresh_token(store, secret, auth, CLIENT)
    assert refreshed is not None
    assert refreshed.token_scopes == principal.token_scopes
    store.tokens.revoke("alice", "ci")
    assert redeem_refresh_token(store, secret, auth, CLIENT) is None


def test_refresh_token_ends_with_the_account(
    auth: LocalAuthenticator, store: MetadataStore
) -> None:
    principal = auth.authenticate("alice", "s3cret", CLIENT)
    assert principal is not None
    _, secret = issue_refresh_token(store, principal, backend="local", client_id="docker")
    _, other = issue_refresh_token(store, principal, backend="htpasswd", client_id="docker")
    assert redeem_refresh_token(store, other, auth, CLIENT) is None  # another backend's
    store.accounts.delete("alice")
    assert redeem_refresh_token(store, secret, auth, CLIENT) is None


def test_a_name_that_is_also_an_htpasswd_user_is_refused(store: MetadataStore) -> None:
    """One name, two passwords: neither may act as the other account (nor keep sessions)."""
    in_file = {"alice"}
    auth = LocalAuthenticator(store, verifier=verifier(), reserved=in_file.__contains__)
    assert auth.authenticate("alice", "s3cret", CLIENT) is None
    assert auth.resolve("alice") is None
    in_file.clear()
    assert auth.authenticate("alice", "s3cret", CLIENT) is not None
    assert auth.has_account("alice")
    assert not auth.has_account("nobody")
