"""A token may only mint tokens its own scopes cover: the glob-covers-glob check."""

from __future__ import annotations

import pytest

from hatchway.auth.credentials.pat import parse_token_scopes
from hatchway.auth.selfservice import scopes_cover


@pytest.mark.parametrize(
    ("own", "wanted"),
    [
        ("repository:alice/*:pull,push", "repository:alice/app:pull"),
        ("repository:alice/*:pull,push", "repository:alice/team-*:push"),
        ("repository:alice/*:pull", "repository:alice/a?c:pull"),
        ("repository:alice/a?c:pull", "repository:alice/a?c:pull"),
        ("repository:alice/a?c:pull", "repository:alice/abc:pull"),
        ("repository:*:*", "repository:x/y:delete"),
        ("repository:a:pull repository:a:push", "repository:a:pull,push"),
        ("registry:catalog:*", "registry:catalog:*"),
    ],
)
def test_covered(own: str, wanted: str) -> None:
    assert scopes_cover(parse_token_scopes([own]), parse_token_scopes([wanted])) == []


@pytest.mark.parametrize(
    ("own", "wanted"),
    [
        ("repository:alice/*:pull", "repository:alice/app:push"),
        ("repository:alice/*:pull", "repository:alice/*:*"),
        ("repository:alice/*:pull", "repository:alice*:pull"),
        ("repository:alice/*:pull", "repository:*:pull"),
        ("repository:alice/a?c:pull", "repository:alice/a*c:pull"),
        ("repository:alice/abc:pull", "repository:alice/a?c:pull"),
        ("repository:alice/*:pull", "registry:catalog:*"),
    ],
)
def test_not_covered(own: str, wanted: str) -> None:
    assert scopes_cover(parse_token_scopes([own]), parse_token_scopes([wanted])) != []
