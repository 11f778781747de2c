"""``hatchway access check``: ask the configured policy a question, see which rule answers.

Exit status: 0 allow, 1 deny, 2 bad usage or configuration, so scripts can branch on it
(``hatchway access check ci push team/app && …``) and still parse the printed line.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.auth.access import Resource, ScopeError, parse_scope
from hatchway.auth.policy import CATALOG_RESOURCE, Policy, PolicyError, load_rules
from hatchway.auth.policy.rules import ANONYMOUS_NAME
from hatchway.auth.principal import ANONYMOUS, Principal
from hatchway.cli.common import ConfigOption, DataOption, fail, load_config

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

ACTIONS = ("pull", "push", "delete", "*", "catalog")


@app.callback()
def access() -> None:
    """Inspect the access rules (the config's ``access:`` list)."""


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
        policy = Policy(load_rules(cfg.access))
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
