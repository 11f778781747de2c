"""Compiled access rules and the glob dialect they use.

Globs: ``*`` matches any run of characters *including* ``/`` (as docker_auth's globs do, so
``team/*`` covers ``team/app`` and ``team/tools/ci``); ``?`` matches one character; every other
character is literal. They compile through :func:`fnmatch.translate`, whose atomic groups rule
out catastrophic backtracking, so a hostile pattern (say, in a token's scopes) cannot stall a
request.

``${account}`` in a repository glob stands for the signed-in account's name, inserted with its
glob characters escaped: an account called ``*`` owns ``*/…`` literally, not every repository.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import translate
from functools import lru_cache

from hatchway.auth.access import Action
from hatchway.auth.principal import Principal
from hatchway.errors import ConfigError

PULL, PUSH, DELETE = Action.PULL.value, Action.PUSH.value, Action.DELETE.value
CATALOG = "catalog"  # a rule-only action: the registry:catalog:* scope
REPOSITORY_ACTIONS: tuple[str, ...] = (PULL, PUSH, DELETE)  # what "*" means on a repository
ACCOUNT = "${account}"
ANONYMOUS_NAME = "anonymous"


class PolicyError(ConfigError):
    """An access rule that cannot be compiled; the message names the rule and the key."""


def escape(text: str) -> str:
    """``text`` as a glob that matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _literal_brackets(pattern: str) -> str:
    # Our dialect has no character classes: "[" is an ordinary character.
    return pattern.replace("[", "[[]")


@lru_cache(maxsize=4096)
def _compile(fnmatch_glob: str) -> re.Pattern[str]:
    return re.compile(translate(fnmatch_glob))


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A compiled, anchored matcher for one glob (cached: token scopes arrive per request)."""
    return _compile(_literal_brackets(pattern))


@dataclass(frozen=True, slots=True)
class RepositoryGlob:
    """A repository pattern; with ``${account}`` it is finished per account, then cached."""

    pattern: str
    _static: re.Pattern[str] | None
    _template: str | None  # fnmatch syntax with ACCOUNT still in it

    @classmethod
    def compile(cls, pattern: str) -> RepositoryGlob:
        if ACCOUNT in pattern:
            return cls(pattern, None, _literal_brackets(pattern))
        return cls(pattern, compile_glob(pattern), None)

    def matches(self, name: str, principal: Principal) -> bool:
        if self._static is not None:
            return self._static.match(name) is not None
        if principal.anonymous or not principal.subject or self._template is None:
            return False  # anonymous has no namespace
        glob = self._template.replace(ACCOUNT, escape(principal.subject))
        return _compile(glob).match(name) is not None


@dataclass(frozen=True, slots=True)
class Rule:
    """One allow rule. Rules never deny: anything no rule allows is denied.

    ``names``/``groups`` of ``None`` mean "not constrained"; a rule with both ``None`` applies
    to every signed-in account. ``anonymous`` rules apply to everyone, signed in or not.
    ``repository`` of ``None`` means every repository (``type: registry``).
    """

    label: str
    description: str
    actions: frozenset[str]
    catalog: bool = False
    anonymous: bool = False
    names: tuple[re.Pattern[str], ...] | None = None
    groups: tuple[re.Pattern[str], ...] | None = None
    repository: RepositoryGlob | None = None

    def __str__(self) -> str:
        return f"{self.label} ({self.description})"

    def applies_to(self, principal: Principal) -> bool:
        if self.anonymous:
            return True
        if principal.anonymous:
            return False
        if self.names is not None and not any(p.match(principal.subject) for p in self.names):
            return False
        return self.groups is None or any(
            p.match(group) for group in principal.groups for p in self.groups
        )

    def covers(self, repository: str, principal: Principal) -> bool:
        return self.repository is None or self.repository.matches(repository, principal)


def build_rule(
    label: str,
    *,
    names: Iterable[str] | None = None,
    groups: Iterable[str] | None = None,
    repository: str | None = None,
    actions: Iterable[str],
) -> Rule:
    """Compile validated parts into a :class:`Rule` and describe it for humans.

    ``actions`` may hold ``catalog`` (only when ``repository`` is ``None``) and ``*``, which
    means pull, push and delete, plus the catalog on a whole-registry rule.
    """
    wanted = set(actions)
    every = "*" in wanted
    granted = set(REPOSITORY_ACTIONS) if every else wanted - {CATALOG}
    catalog = repository is None and (every or CATALOG in wanted)
    name_list = list(names) if names is not None else None
    group_list = list(groups) if groups is not None else None
    anonymous = name_list is not None and ANONYMOUS_NAME in name_list
    parts: list[str] = []
    if name_list is not None:
        parts.append(f"name: {','.join(name_list)}")
    if group_list is not None:
        parts.append(f"group: {','.join(group_list)}")
    if not parts:
        parts.append("any signed-in account")
    parts.append("type: registry" if repository is None else f"repository: {repository}")
    shown = ["*"] if every else [a for a in (*REPOSITORY_ACTIONS, CATALOG) if a in wanted]
    parts.append(f"actions: {','.join(shown)}")
    return Rule(
        label=label,
        description=", ".join(parts),
        actions=frozenset(granted),
        catalog=catalog,
        anonymous=anonymous,
        names=None if name_list is None else tuple(compile_glob(n) for n in name_list),
        groups=None if group_list is None else tuple(compile_glob(g) for g in group_list),
        repository=None if repository is None else RepositoryGlob.compile(repository),
    )


# With no rules configured: every account owns its namespace; anonymous may do nothing.
DEFAULT_RULES: tuple[Rule, ...] = (
    build_rule("default rule", repository=f"{ACCOUNT}/*", actions=REPOSITORY_ACTIONS),
)
