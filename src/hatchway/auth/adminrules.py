"""Access rules for admins: list, add, delete, move, and the "explain" of one decision.

Rules come from two places (see :mod:`hatchway.auth.policy.source`): the config file's
``access:`` list, which stays their source (listed here read-only; a change to one is
refused with :class:`ReadOnlyRule`), then the database's, which this service edits the
way ``hatchway access rule add|del|move`` does: checked by the same ``load_rule`` before
anything is stored (so the same :class:`~hatchway.auth.policy.PolicyError` messages), and
audited under the same event names. When neither holds a rule the defaults apply; they
are listed too, read-only.

:meth:`RulesService.check` answers as ``hatchway access check`` does (the same
:class:`~hatchway.auth.policy.Decision` text), for an account looked up in the store
(its groups and admin flag), with the rules in force in this server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hatchway.auth.access import Resource, ScopeError, parse_scope
from hatchway.auth.admin import Actor, actor_event
from hatchway.auth.policy import (
    CATALOG_RESOURCE,
    DEFAULT_RULES,
    Decision,
    Policy,
    PolicyError,
    load_rule,
)
from hatchway.auth.policy.rules import ANONYMOUS_NAME
from hatchway.auth.principal import ANONYMOUS, Kind, Principal
from hatchway.auth.selfservice import SelfServiceError
from hatchway.metadata import AccessRuleRecord, AuditEvent, MetadataStore, NotFoundError
from hatchway.oci.names import is_valid_name

CHECK_ACTIONS = ("pull", "push", "delete", "*", "catalog")
DATABASE_LABEL = "database rule "


class ReadOnlyRule(SelfServiceError):
    """The rule comes from the config file (or is a default): edit the file instead."""


@dataclass(frozen=True, slots=True)
class RuleView:
    """One rule as listed: ``id`` is the database id, or ``config-N`` / ``default-N``."""

    id: str
    source: str  # config | database | default
    position: int  # 1-based, in the order rules apply (config first, then database)
    label: str  # as decisions name it: "rule 2", "database rule 7"
    description: str
    read_only: bool
    rule: dict[str, Any] | None = None  # the stored mapping (database rules)
    comment: str | None = None
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The decision, with the account as it was judged."""

    account: str
    known: bool  # the account is in the built-in store (else judged with no groups)
    groups: tuple[str, ...]
    admin: bool
    decision: Decision


class RulesService:
    """``policy`` gives the rules in force (the server's PolicySource); ``on_change`` is
    called after every stored change so this worker applies it at once."""

    def __init__(
        self,
        store: MetadataStore,
        audit: Callable[[AuditEvent], None],
        policy: Callable[[], Policy],
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self._audit = audit
        self._policy = policy
        self._on_change = on_change or (lambda: None)

    def rules(self, actor: Actor) -> list[RuleView]:
        """Every rule in the order it applies; config and default rules are read-only."""
        actor.require_admin()
        stored = self.store.rules.list()
        in_force = [r for r in self._policy().rules if not r.label.startswith(DATABASE_LABEL)]
        views: list[RuleView] = []
        for n, rule in enumerate(in_force, start=1):
            views.append(RuleView(f"config-{n}", "config", n, rule.label, rule.description, True))
        # The database's rules as stored now (the policy picks changes up within a second).
        for record in stored:
            views.append(_database_view(record, _described(record), len(views) + 1))
        if not views:
            views = [
                RuleView(f"default-{n}", "default", n, r.label, r.description, True)
                for n, r in enumerate(DEFAULT_RULES, start=1)
            ]
        return views

    def add_rule(
        self,
        actor: Actor,
        rule: Mapping[str, Any],
        *,
        comment: str | None = None,
        position: int | None = None,
    ) -> RuleView:
        """Check ``rule`` as the config file's are (PolicyError) and store it at
        ``position`` among the database's rules (1-based; default last)."""
        actor.require_admin()
        item = dict(rule)
        compiled = load_rule("new rule", item)
        note = comment if comment is not None else item.get("comment")
        record = self.store.rules.add(
            item, comment=str(note) if note is not None else None, position=position
        )
        self._on_change()
        self._audit(actor_event(actor, "access.rule.add", None, rule_id=record.id, rule=item))
        return _database_view(record, compiled.description, self._config_count() + record.position)

    def delete_rule(self, actor: Actor, rule_id: str) -> AccessRuleRecord:
        """Delete a database rule by id; a config or default rule is :class:`ReadOnlyRule`."""
        actor.require_admin()
        number = self._database_id(rule_id)
        record = self.store.rules.delete(number)
        self._on_change()
        self._audit(actor_event(actor, "access.rule.del", None, rule_id=number, rule=record.rule))
        return record

    def move_rule(self, actor: Actor, rule_id: str, position: int) -> RuleView:
        """Move a database rule to ``position`` (1-based among the database's rules)."""
        actor.require_admin()
        number = self._database_id(rule_id)
        record = self.store.rules.move(number, position)
        self._on_change()
        self._audit(actor_event(actor, "access.rule.move", None, rule_id=number, position=position))
        return _database_view(record, _described(record), self._config_count() + record.position)

    def check(self, actor: Actor, account: str, action: str, repository: str | None) -> CheckResult:
        """May ``account`` do ``action`` on ``repository``, and which rule decided?
        ValueError for an unknown action or a bad repository name."""
        actor.require_admin()
        resource, verb = check_resource(action, repository)
        principal, known = self._principal(account)
        if known and self._disabled(account):
            decision = Decision(False, None, "the account is disabled")
        else:
            decision = self._policy().decide(principal, resource, verb)
        return CheckResult(
            account, known, tuple(sorted(principal.groups)), principal.admin, decision
        )

    def _principal(self, account: str) -> tuple[Principal, bool]:
        if account == ANONYMOUS_NAME:
            return ANONYMOUS, True
        if not account or len(account) > 255:
            raise ValueError("give an account name, or 'anonymous'")
        found = self.store.accounts.get(account)
        if found is None:
            return Principal(subject=account), False
        kind = Kind.ROBOT if found.robot else Kind.USER
        return Principal(account, kind, found.groups, found.admin), True

    def _disabled(self, account: str) -> bool:
        found = self.store.accounts.get(account)
        return found is not None and found.disabled

    def _config_count(self) -> int:
        return sum(1 for r in self._policy().rules if not r.label.startswith(DATABASE_LABEL))

    def _database_id(self, rule_id: str) -> int:
        if rule_id.startswith(("config-", "default-")):
            where = "the config file" if rule_id.startswith("config-") else "the defaults"
            raise ReadOnlyRule(
                f"rule {rule_id[:40]} comes from {where}, which stays the source of its "
                "rules: edit the access: list of the config file instead"
            )
        if not rule_id.isdigit() or len(rule_id) > 18:
            raise NotFoundError(f"no access rule {rule_id[:40]!r}")
        return int(rule_id)


def _described(record: AccessRuleRecord) -> str:
    """What the rule allows, or why it is not in force (a rule stored before a change of
    the grammar: the server keeps the rules it had, see PolicySource)."""
    try:
        return load_rule(f"{DATABASE_LABEL}{record.id}", record.rule).description
    except PolicyError as exc:
        return f"not in force: {exc}"


def _database_view(record: AccessRuleRecord, description: str, position: int) -> RuleView:
    return RuleView(
        str(record.id),
        "database",
        position,
        f"{DATABASE_LABEL}{record.id}",
        description,
        False,
        dict(record.rule),
        record.comment,
        record.created_at,
    )


def check_resource(action: str, repository: str | None) -> tuple[Resource, str]:
    """The resource and action ``hatchway access check`` would judge (ValueError if bad)."""
    if action not in CHECK_ACTIONS:
        raise ValueError(
            f"unknown action {action[:40]!r}: expected one of {', '.join(CHECK_ACTIONS)}"
        )
    if repository in (None, "", "registry:catalog"):
        if action not in ("catalog", "*") or (not repository and action == "*"):
            raise ValueError("give a repository (or registry:catalog with action catalog or '*')")
        return CATALOG_RESOURCE, "*"
    if action == "catalog":
        raise ValueError("action catalog takes no repository (or registry:catalog)")
    try:
        parsed = parse_scope(f"repository:{repository}:{action}")
    except ScopeError:
        parsed = None
    if parsed is None or not is_valid_name(repository):  # the OCI grammar: what can exist
        raise ValueError(f"invalid repository name {repository[:200]!r}")
    return parsed.resource, action
