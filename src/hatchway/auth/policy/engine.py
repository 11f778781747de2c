"""Who may do what: a token carries what was asked for *and* is allowed, nothing more.

Pure (no I/O) and precompiled, because it runs on every token request. The rules:

- Rules only allow; the first rule that allows an action is reported as its reason.
- With no rules at all, :data:`~hatchway.auth.policy.rules.DEFAULT_RULES` apply: every
  signed-in account may pull, push and delete in ``${account}/*``; anonymous may do nothing.
- A ``name: anonymous`` rule applies to everyone: what anonymous may do, accounts may too.
- Admins may do anything. Personal access tokens (``principal.token_scopes``) narrow any
  grant, admin's included, to what their (glob) scopes name.
- The catalog (``registry:catalog:*``) goes to admins and to accounts a ``type: registry``
  rule gives action ``catalog`` or ``*``.
- Requested ``*`` on a repository means pull, push and delete; unknown actions and resources
  are never granted (asking for more is not an error).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hatchway.auth.access import Access, Resource
from hatchway.auth.policy.rules import DEFAULT_RULES, REPOSITORY_ACTIONS, Rule, compile_glob
from hatchway.auth.principal import Principal

CATALOG_RESOURCE = Resource("registry", "catalog")
_ORDER = {action: i for i, action in enumerate((*REPOSITORY_ACTIONS, "*"))}


@dataclass(frozen=True, slots=True)
class Decision:
    """One action on one resource: allowed or not, and the rule (or reason) that decided."""

    allowed: bool
    rule: str | None
    reason: str

    def __str__(self) -> str:
        return f"{'allow' if self.allowed else 'deny'}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Grant:
    """What was granted for one requested resource; ``access.actions`` may be empty.

    ``reason`` explains every requested action for the audit log; ``rules`` lists the labels
    of the rules that allowed something.
    """

    access: Access
    requested: Access
    reason: str
    rules: tuple[str, ...] = ()

    @property
    def granted(self) -> bool:
        return bool(self.access.actions)


def granted(grants: Iterable[Grant]) -> list[Access]:
    """The accesses a token should carry: grants with at least one action."""
    return [g.access for g in grants if g.access.actions]


def _concrete(resource: Resource, action: str) -> tuple[str, ...]:
    """The actions ``action`` stands for on ``resource``; empty when it means nothing there."""
    if resource.base_type == "repository":
        if action == "*":
            return REPOSITORY_ACTIONS
        return (action,) if action in REPOSITORY_ACTIONS else ()
    if resource == CATALOG_RESOURCE and action == "*":
        return ("*",)
    return ()


def _token_allows(scopes: tuple[Access, ...], resource: Resource, action: str) -> bool:
    for scope in scopes:
        if scope.resource.base_type != resource.base_type:
            continue
        if action not in scope.actions and "*" not in scope.actions:
            continue
        if compile_glob(scope.resource.name).match(resource.name):
            return True
    return False


def _describe(resource: Resource) -> str:
    if resource == CATALOG_RESOURCE:
        return "the catalog (registry:catalog:*)"
    return resource.name


class Policy:
    """An ordered set of compiled rules from any source (config file, database, both)."""

    __slots__ = ("_effective", "_rules")

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules = tuple(rules)
        self._effective = self._rules or DEFAULT_RULES

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The configured rules (empty when the defaults apply)."""
        return self._rules

    @property
    def effective_rules(self) -> tuple[Rule, ...]:
        return self._effective

    def merged(self, other: Iterable[Rule]) -> Policy:
        """This policy's rules followed by ``other``'s; defaults apply only if both are empty."""
        return Policy((*self._rules, *other))

    def authorize(self, principal: Principal, requested: Iterable[Access]) -> list[Grant]:
        """One :class:`Grant` per requested access, in order: requested ∩ allowed."""
        grants: list[Grant] = []
        rules = self._applicable(principal)
        for access in requested:
            decided: dict[str, Decision] = {}
            unknown: list[str] = []
            for action in sorted(access.actions):
                concrete = _concrete(access.resource, action)
                if not concrete:
                    unknown.append(action)
                for one in concrete:
                    if one not in decided:
                        decided[one] = _decide_one(rules, principal, access.resource, one)
            order = sorted(decided, key=_ORDER.__getitem__)
            allowed = frozenset(a for a in order if decided[a].allowed)
            labels = dict.fromkeys(
                d.rule for a in order if (d := decided[a]).allowed and d.rule is not None
            )
            grants.append(
                Grant(
                    access=Access(access.resource, allowed),
                    requested=access,
                    reason=_explain([(a, decided[a]) for a in order], unknown),
                    rules=tuple(labels),
                )
            )
        return grants

    def decide(self, principal: Principal, resource: Resource, action: str) -> Decision:
        """May ``principal`` do ``action`` on ``resource``? For ``*``, every action must be
        allowed; ``rule`` then lists each deciding rule (``"rule 1, rule 3"``)."""
        concrete = _concrete(resource, action)
        if not concrete:
            return Decision(False, None, f"{action!r} is not an action on {resource.type}")
        rules = self._applicable(principal)
        decisions = [_decide_one(rules, principal, resource, a) for a in concrete]
        for decision in decisions:
            if not decision.allowed:
                return decision
        if len(decisions) == 1:
            return decisions[0]
        labels = dict.fromkeys(d.rule for d in decisions if d.rule is not None)
        reasons = dict.fromkeys(d.reason for d in decisions)
        return Decision(True, ", ".join(labels), "; ".join(reasons))

    def _applicable(self, principal: Principal) -> tuple[Rule, ...]:
        """The rules whose name/group part admits ``principal``: matched once per call."""
        return (
            () if principal.admin else tuple(r for r in self._effective if r.applies_to(principal))
        )


def _decide_one(
    rules: tuple[Rule, ...], principal: Principal, resource: Resource, action: str
) -> Decision:
    decision = (
        Decision(True, "admin", "admin account")
        if principal.admin
        else _by_rules(rules, principal, resource, action)
    )
    if (
        decision.allowed
        and principal.token_scopes is not None
        and not _token_allows(principal.token_scopes, resource, action)
    ):
        return Decision(
            False, None, f"the token's scopes do not allow {action} on {_describe(resource)}"
        )
    return decision


def _by_rules(
    rules: tuple[Rule, ...], principal: Principal, resource: Resource, action: str
) -> Decision:
    """The first of ``rules`` (already matched to ``principal``) that allows ``action``."""
    if resource == CATALOG_RESOURCE:
        for rule in rules:
            if rule.catalog:
                return Decision(True, rule.label, str(rule))
        return Decision(False, None, f"no rule grants {_describe(resource)}")
    for rule in rules:
        if action in rule.actions and rule.covers(resource.name, principal):
            return Decision(True, rule.label, str(rule))
    return Decision(False, None, f"no rule allows {action} on {resource.name}")


def _explain(decided: list[tuple[str, Decision]], unknown: list[str]) -> str:
    """``pull,push allowed by rule 2 (…); delete denied: no rule allows delete on x``."""
    grouped: dict[tuple[bool, str], list[str]] = {}
    for action, decision in decided:
        grouped.setdefault((decision.allowed, decision.reason), []).append(action)
    parts = [
        f"{','.join(actions)} allowed by {reason}"
        if allowed
        else f"{','.join(actions)} denied: {reason}"
        for (allowed, reason), actions in grouped.items()
    ]
    if unknown:
        parts.append(f"{','.join(unknown)} ignored: not an action on this resource")
    return "; ".join(parts) or "nothing requested"
