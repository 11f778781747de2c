"""``hatchway access``: ask the policy a question (``check``), manage the database's rules.

``check`` exit status: 0 allow, 1 deny, 2 bad usage or configuration, so scripts can
branch on it (``hatchway access check ci push team/app && …``) and still parse the line.

``rule add|list|del|move`` edit the rules kept in the database, which apply after the
config file's ``access:`` list; running servers pick a change up within about a second.
A rule is checked exactly as the config file's are before it is saved (exit 2 if not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from sqlalchemy.exc import SQLAlchemyError

from hatchway.auth.access import Resource, ScopeError, parse_scope
from hatchway.auth.policy import CATALOG_RESOURCE, Policy, PolicyError, Rule, load_rule, load_rules
from hatchway.auth.policy.rules import ANONYMOUS_NAME
from hatchway.auth.policy.source import database_rules
from hatchway.auth.principal import ANONYMOUS, Principal
from hatchway.cli.commands._accounts import audit, errors, open_store, table, when
from hatchway.cli.common import ConfigOption, DataOption, fail, load_config
from hatchway.config.model import Config
from hatchway.metadata import MetadataStore, database_dsn

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
rule_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(
    rule_app,
    name="rule",
    help="Access rules in the database (applied after the config file's access: list).",
)

ACTIONS = ("pull", "push", "delete", "*", "catalog")
RuleIdArg = Annotated[int, typer.Argument(help="The rule's id (hatchway access rule list).")]


@app.callback()
def access() -> None:
    """Access rules: the config's ``access:`` list, then the database's."""


@app.command()
def check(
    account: Annotated[str, typer.Argument(help="Account name, or 'anonymous'.")],
    action: Annotated[str, typer.Argument(help="pull, push, delete, '*' (all three), or catalog.")],
    repository: Annotated[
        str | None,
        typer.Argument(help="Repository name; registry:catalog (or omitted) for the catalog."),
    ] = None,
    config: ConfigOption = None,
    data: DataOption = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="A group of the account (repeatable)."),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Treat the account as an admin.")] = False,
) -> None:
    """Print allow/deny for ACCOUNT doing ACTION on REPOSITORY, and the rule that decided.

    Exit status: 0 allow, 1 deny, 2 bad usage or configuration.
    """
    resource, verb = _resource(action, repository)
    principal = _principal(account, frozenset(group or ()), admin)
    cfg = load_config(config, data)
    try:
        policy = Policy(load_rules(cfg.access)).merged(_database_rules(cfg))
    except PolicyError as exc:
        raise fail(f"invalid access rules\n{exc}", 2) from None
    decision = policy.decide(principal, resource, verb)
    typer.echo(str(decision))
    raise typer.Exit(0 if decision.allowed else 1)


def _resource(action: str, repository: str | None) -> tuple[Resource, str]:
    if action not in ACTIONS:
        raise fail(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}", 2)
    if repository in (None, "registry:catalog"):
        if action not in ("catalog", "*") or (repository is None and action == "*"):
            raise fail("give a repository (or registry:catalog with action catalog or '*')", 2)
        return CATALOG_RESOURCE, "*"
    if action == "catalog":
        raise fail("action catalog takes no repository (or registry:catalog)", 2)
    try:
        parsed = parse_scope(f"repository:{repository}:{action}")
    except ScopeError:
        raise fail(f"invalid repository name {repository!r}", 2) from None
    return parsed.resource, action


def _principal(account: str, groups: frozenset[str], admin: bool) -> Principal:
    if account == ANONYMOUS_NAME:
        if groups or admin:
            raise fail("anonymous has no groups and is never an admin", 2)
        return ANONYMOUS
    if not account:
        raise fail("give an account name, or 'anonymous'", 2)
    return Principal(subject=account, groups=groups, admin=admin)


def _database_rules(cfg: Config) -> list[Rule]:
    """The database's rules; none when its SQLite file does not exist (nothing to create)."""
    dsn = database_dsn(cfg)
    if dsn.startswith("sqlite:///") and not Path(dsn.removeprefix("sqlite:///")).exists():
        return []
    try:
        store = MetadataStore(dsn)
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"cannot open the database: {exc}") from None
    try:
        with errors():
            return database_rules(store.rules.list())
    finally:
        store.dispose()


def _parse_rule(text: str) -> dict[str, Any]:
    try:
        item = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise fail(f"the rule is not valid YAML or JSON: {exc}", 2) from None
    if not isinstance(item, dict):
        raise fail("the rule must be one mapping, such as '{name: alice, action: pull, ...}'", 2)
    try:
        load_rule("new rule", item)
    except PolicyError as exc:
        raise fail(str(exc), 2) from None
    return item


def _shown(rule: dict[str, Any]) -> str:
    """A rule as one YAML flow mapping: what ``rule add`` takes back."""
    return str(yaml.safe_dump(rule, default_flow_style=True, sort_keys=False, width=10**6)).strip()


@rule_app.command("add")
def rule_add(
    rule: Annotated[
        str,
        typer.Argument(
            help="One rule as a YAML/JSON mapping, as in the config's access: list, e.g. "
            "'{name: alice, repository: \"team/*\", action: [pull, push]}'."
        ),
    ],
    comment: Annotated[str | None, typer.Option("--comment", help="Why the rule exists.")] = None,
    position: Annotated[
        int | None,
        typer.Option("--position", min=1, help="1-based place among the database's rules."),
    ] = None,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Check a rule and add it (last, unless --position); servers apply it within a second."""
    item = _parse_rule(rule)
    note = comment if comment is not None else item.get("comment")
    store = open_store(config, data)
    with errors():
        record = store.rules.add(item, comment=note, position=position)
        audit(store, "access.rule.add", None, rule_id=record.id, rule=item)
    described = load_rule(f"database rule {record.id}", item)
    typer.echo(f"Added {described} at position {record.position}.")


@rule_app.command("list")
def rule_list(config: ConfigOption = None, data: DataOption = None) -> None:
    """List the database's rules in the order they apply (after the config file's)."""
    store = open_store(config, data)
    with errors():
        found = store.rules.list()
    if not found:
        typer.echo("No access rules in the database.")
        return
    table(
        ["ID", "POSITION", "RULE", "CREATED", "COMMENT"],
        [
            [str(r.id), str(r.position), _shown(r.rule), when(r.created_at), r.comment or "-"]
            for r in found
        ],
    )


@rule_app.command("del")
def rule_delete(rule_id: RuleIdArg, config: ConfigOption = None, data: DataOption = None) -> None:
    """Delete a rule from the database."""
    store = open_store(config, data)
    with errors():
        record = store.rules.delete(rule_id)
        audit(store, "access.rule.del", None, rule_id=rule_id, rule=record.rule)
    typer.echo(f"Deleted access rule {rule_id}: {_shown(record.rule)}")


@rule_app.command("move")
def rule_move(
    rule_id: RuleIdArg,
    position: Annotated[int, typer.Argument(min=1, help="The new 1-based position.")],
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Move a rule to another position (the first rule that allows an action is reported)."""
    store = open_store(config, data)
    with errors():
        record = store.rules.move(rule_id, position)
        audit(store, "access.rule.move", None, rule_id=rule_id, position=position)
    typer.echo(f"Moved access rule {rule_id} to position {record.position}.")
