"""The Docker token-auth scope grammar: ``type:name:action[,action]*``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hatchway.auth.access import Access, Resource, ScopeError, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("repository:alice/app:pull", ("repository", "alice/app", {"pull"})),
        ("repository:alice/app:pull,push", ("repository", "alice/app", {"pull", "push"})),
        ("registry:catalog:*", ("registry", "catalog", {"*"})),
        ("repository(plugin):a/b:pull", ("repository(plugin)", "a/b", {"pull"})),
        ("repository:a--b__c.d_e/f:delete", ("repository", "a--b__c.d_e/f", {"delete"})),
        # The type ends at the first colon, the actions start after the last one, so a
        # name holding host:port reads as docker_auth and the spec's grammar read it.
        ("repository:host:5000/foo:pull", ("repository", "host:5000/foo", {"pull"})),
        (
            "repository:Reg.Example.com:443/a/b:push",
            ("repository", "Reg.Example.com:443/a/b", {"push"}),
        ),
    ],
)
def test_valid_scopes(scope: str, expected: tuple[str, str, set[str]]) -> None:
    kind, name, actions = expected
    assert parse_scope(scope) == Access(Resource(kind, name), frozenset(actions))


@pytest.mark.parametrize(
    "scope",
    [
        "repository:alice/app:",  # no action: the grammar needs at least one
        "repository:alice/app:pull,",
        "repository:alice/app:,pull",
        "repository:alice/app:pull,,push",
        "repository:alice/app:PULL",
        "repository:alice/app:pu ll",
        "repository:alice/app",
        "repository:alice/app:pull:",
        ":alice/app:pull",
        "Repository:alice/app:pull",
        "repository::pull",
        "repository:Alice/App:pull",  # upper case only in a host
        "repository:alice//app:pull",
        "repository:/alice:pull",
        "repository:alice/:pull",
        "repository:alice/app-:pull",
        "repository:host:port/foo:pull",
        "repository:a:1:2/b:pull",
        "repository:" + "a" * 513 + ":pull",
    ],
)
def test_malformed_scopes_are_refused(scope: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(scope)


def test_an_empty_action_list_is_refused_among_others() -> None:
    with pytest.raises(ScopeError, match="no action"):
        parse_scopes(["repository:alice/a:pull repository:alice/b:"])


def test_adversarial_names_are_refused_in_linear_time() -> None:
    """A separator that may be empty ("-*") made ``"a" * 30 + "!"`` backtrack through
    2^30 ways to split the a's: minutes of CPU per token request. Run in a child process
    so a regression shows as a clear failure here, not a suite that never ends."""
    code = (
        "from hatchway.auth.access import parse_scope, ScopeError\n"
        "for name in ('a' * 60 + '!', 'a-' * 60 + '!', 'a.' * 60 + 'A', 'a' * 500 + '/!'):\n"
        "    try:\n"
        "        parse_scope('repository:' + name + ':pull')\n"
        "    except ScopeError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('accepted ' + name)\n"
    )
    # The bound is a hang guard, not a speed check: linear parsing takes microseconds,
    # the old exponential one would need years for 60 characters.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
