"""Which repositories a principal may pull, in a form a database query can use.

Listing 10,000 repositories and asking the policy about each one would cost tens of
milliseconds per page. :func:`pull_filter` instead hands out the *globs* that can possibly
allow pull (the rules that apply to the principal, narrowed by its token's scopes), which
the repository index turns into SQL ``LIKE`` conditions, and an exact check that every
candidate row then passes through: the globs only prefilter, the policy still decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from hatchway.auth.access import Resource
from hatchway.auth.policy.engine import Policy
from hatchway.auth.policy.rules import ACCOUNT, PULL
from hatchway.auth.principal import Principal


@dataclass(frozen=True, slots=True)
class RepositoryFilter:
    """``patterns``: groups of globs; a visible name matches a glob of every group (empty:
    no narrowing). ``allows(name)`` is the policy's exact answer."""

    policy: Policy
    principal: Principal
    action: str
    patterns: tuple[tuple[str, ...], ...]

    def allows(self, name: str) -> bool:
        return self.policy.decide(self.principal, Resource("repository", name), self.action).allowed


def _rule_globs(policy: Policy, principal: Principal, action: str) -> tuple[str, ...] | None:
    """Globs of the rules that may allow ``action`` to ``principal``; None: every name."""
    if principal.admin:
        return None
    globs: list[str] = []
    for rule in policy.effective_rules:
        if action not in rule.actions or not rule.applies_to(principal):
            continue
        if rule.repository is None:
            return None
        pattern = rule.repository.pattern
        if ACCOUNT in pattern:
            if principal.anonymous or not principal.subject:
                continue  # anonymous has no namespace
            pattern = pattern.replace(ACCOUNT, principal.subject)
        globs.append(pattern)
    return tuple(globs)


def _scope_globs(principal: Principal, action: str) -> tuple[str, ...] | None:
    """Globs a token's scopes allow ``action`` on; None when it is no token."""
    if principal.token_scopes is None:
        return None
    return tuple(
        scope.resource.name
        for scope in principal.token_scopes
        if scope.resource.base_type == "repository"
        and (action in scope.actions or "*" in scope.actions)
    )


def pull_filter(policy: Policy, principal: Principal, action: str = PULL) -> RepositoryFilter:
    """What ``principal`` may ``action`` (pull by default), as globs plus the exact check.

    Account names hold no glob characters (``*``, ``?``), so ``${account}`` is put in as
    it is; where that would not hold, the exact check still refuses what the glob let by.
    """
    groups = [g for g in (_rule_globs(policy, principal, action), _scope_globs(principal, action))]
    return RepositoryFilter(
        policy, principal, action, tuple(group for group in groups if group is not None)
    )
