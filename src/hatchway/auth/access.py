"""Resources, actions and the Docker token-auth scope grammar.

    scope          := resourcescope [ ' ' resourcescope ]*
    resourcescope  := resourcetype ":" resourcename ":" action [ ',' action ]*
    resourcetype   := resourcetypevalue [ '(' resourcetypevalue ')' ]
    resourcename   := [ hostname '/' ] component [ '/' component ]*
    hostname       := hostcomponent [ '.' hostcomponent ]* [ ':' port-number ]

A name may hold a ``host:port`` component, so the type ends at the first ``:`` and the
actions start after the last one (as docker_auth reads ``repository:host:5000/foo:pull``).
At least one action is required, and none may be empty: ``repository:alice/app:`` asks for
nothing, so it is refused rather than granted as an empty token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"
    ALL = "*"


class ScopeError(ValueError):
    """A scope string that does not follow the grammar; the message says where."""


_TYPE_RE = re.compile(r"[a-z0-9]+(?:\([a-z0-9]+\))?")
# Every separator is non-empty, so each string matches one way only: a separator that
# could be empty ("-*") lets "a" * 30 + "!" backtrack through 2^30 splits.
_HOST_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*")
_ACTION_RE = re.compile(r"[a-z]+|\*")
MAX_NAME_LENGTH = 512  # a repository name (255) behind a host:port


@dataclass(frozen=True, slots=True, order=True)
class Resource:
    type: str  # "repository", "registry", or "repository(plugin)" with its class
    name: str

    @property
    def base_type(self) -> str:
        return self.type.split("(", 1)[0]


@dataclass(frozen=True, slots=True)
class Access:
    """What a request needs or a token grants: one resource and a set of actions."""

    resource: Resource
    actions: frozenset[str]

    def scope(self) -> str:
        return f"{self.resource.type}:{self.resource.name}:{','.join(sorted(self.actions))}"

    def claim(self) -> dict[str, object]:
        """The ``access`` claim entry of a registry JWT."""
        return {
            "type": self.resource.type,
            "name": self.resource.name,
            "actions": sorted(self.actions),
        }


def parse_scope(value: str) -> Access:
    """Parse one resource scope, e.g. ``repository:team/app:pull,push``."""
    head, sep, rest = value.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2:
        raise ScopeError(f"malformed scope {value[:200]!r}: expected type:name:actions")
    if not _TYPE_RE.fullmatch(head):
        raise ScopeError(f"malformed scope {value[:200]!r}: bad resource type {head[:50]!r}")
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.fullmatch(name):
        raise ScopeError(f"malformed scope {value[:200]!r}: bad resource name")
    if not actions:
        raise ScopeError(f"malformed scope {value[:200]!r}: no action given")
    parsed = actions.split(",")
    for action in parsed:
        if not _ACTION_RE.fullmatch(action):
            raise ScopeError(f"malformed scope {value[:200]!r}: bad action {action[:50]!r}")
    return Access(Resource(head, name), frozenset(parsed))


def parse_scopes(values: list[str]) -> list[Access]:
    """Parse ``scope`` parameters: each may hold several space-separated scopes.

    Scopes for the same resource are merged, as clients sometimes ask twice.
    """
    merged: dict[Resource, set[str]] = {}
    for value in values:
        for part in value.split(" "):
            if not part:
                continue
            access = parse_scope(part)
            merged.setdefault(access.resource, set()).update(access.actions)
    return [Access(r, frozenset(a)) for r, a in sorted(merged.items())]


def format_scopes(accesses: list[Access]) -> str:
    return " ".join(a.scope() for a in accesses)
