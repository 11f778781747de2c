"""Token secrets, the glob-tolerant scope parser and lifetimes."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from hatchway.auth.access import Access, Resource, ScopeError
from hatchway.auth.credentials.pat import (
    looks_like_token,
    new_secret,
    parse_expiry,
    parse_token_scope,
    parse_token_scopes,
    secret_hash,
)


def test_secrets() -> None:
    secret = new_secret()
    assert secret.startswith("hw_")
    assert len(secret) == 46
    assert looks_like_token(secret)
    assert new_secret() != secret
    assert secret_hash(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert not looks_like_token("hw_short")
    assert not looks_like_token("password")


@pytest.mark.parametrize(
    ("scope", "name", "actions"),
    [
        ("repository:alice/*:pull,push", "alice/*", {"pull", "push"}),
        ("repository:*:*", "*", {"*"}),
        ("repository:team-?/app:pull", "team-?/app", {"pull"}),
        ("repository:*/*/x:delete", "*/*/x", {"delete"}),
        ("repository:localhost:5000/a*:pull", "localhost:5000/a*", {"pull"}),
        ("repository:plain/name:pull", "plain/name", {"pull"}),
        ("registry:catalog:*", "catalog", {"*"}),
    ],
)
def test_parse_token_scope(scope: str, name: str, actions: set[str]) -> None:
    access = parse_token_scope(scope)
    assert access.resource.name == name
    assert access.actions == actions
    assert access.scope() == scope


@pytest.mark.parametrize(
    "scope",
    [
        "repository:alice//x:pull",  # empty component
        "repository:alice/Bob*:pull",  # upper case
        "repository:alice/*",  # no actions part
        "repository:alice/*:",  # no actions
        "repository:alice/*:pul",  # unknown action
        "repositry:alice/*:pull",  # unknown type
        "repository:[ab]:pull",  # only * and ? are globs
        "repository::pull",
        "nonsense",
    ],
)
def test_parse_token_scope_rejects(scope: str) -> None:
    with pytest.raises(ScopeError):
        parse_token_scope(scope)


def test_parse_token_scopes_merges() -> None:
    got = parse_token_scopes(["repository:a/*:pull repository:b:push", "repository:a/*:push"])
    assert got == (
        Access(Resource("repository", "a/*"), frozenset({"pull", "push"})),
        Access(Resource("repository", "b"), frozenset({"push"})),
    )


def test_parse_expiry() -> None:
    assert parse_expiry("30d") == timedelta(days=30)
    assert parse_expiry("2w") == timedelta(weeks=2)
    assert parse_expiry("1d12h") == timedelta(hours=36)
    assert parse_expiry(" 90m ") == timedelta(minutes=90)
    assert parse_expiry("never") is None
    for bad in ["", "30", "0d", "-1d", "30 days", "1y"]:
        with pytest.raises(ValueError, match="expiry"):
            parse_expiry(bad)
