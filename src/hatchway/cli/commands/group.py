"""``hatchway group``: groups of the built-in store and who is in them."""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.cli.commands._accounts import audit, errors, open_store, table, when
from hatchway.cli.common import ConfigOption, DataOption

app = typer.Typer(help="Manage groups and their members.", no_args_is_help=True)
member_app = typer.Typer(help="Add accounts to groups or remove them.", no_args_is_help=True)
app.add_typer(member_app, name="member")

GroupArg = Annotated[str, typer.Argument(help="Group name.")]
UserArg = Annotated[str, typer.Argument(help="Account name.")]


@app.command("add")
def add(name: GroupArg, config: ConfigOption = None, data: DataOption = None) -> None:
    """Create a group."""
    store = open_store(config, data)
    with errors():
        store.accounts.create_group(name)
        audit(store, "group.add", None, group=name)
    typer.echo(f"Added group {name}.")


@app.command("del")
def delete(name: GroupArg, config: ConfigOption = None, data: DataOption = None) -> None:
    """Delete a group (its members' accounts stay)."""
    store = open_store(config, data)
    with errors():
        store.accounts.delete_group(name)
        audit(store, "group.del", None, group=name)
    typer.echo(f"Deleted group {name}.")


@app.command("list")
def list_(config: ConfigOption = None, data: DataOption = None) -> None:
    """List groups and their members."""
    store = open_store(config, data)
    with errors():
        found = store.accounts.list_groups()
    table(
        ["GROUP", "MEMBERS", "CREATED"],
        [[g.name, ",".join(g.members) or "-", when(g.created_at)] for g in found],
    )


@member_app.command("add")
def member_add(
    group: GroupArg, user: UserArg, config: ConfigOption = None, data: DataOption = None
) -> None:
    """Add an account to a group."""
    store = open_store(config, data)
    with errors():
        added = store.accounts.add_member(group, user)
        if added:
            audit(store, "group.member.add", user, group=group)
    typer.echo(f"{user} is {'now' if added else 'already'} a member of {group}.")


@member_app.command("remove")
def member_remove(
    group: GroupArg, user: UserArg, config: ConfigOption = None, data: DataOption = None
) -> None:
    """Remove an account from a group."""
    store = open_store(config, data)
    with errors():
        removed = store.accounts.remove_member(group, user)
        if removed:
            audit(store, "group.member.remove", user, group=group)
    typer.echo(f"{user} is {'no longer' if removed else 'not'} a member of {group}.")
