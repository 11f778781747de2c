"""``hatchway user``: accounts of the built-in store (users and robots)."""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.auth.admin import Actor, AdminService
from hatchway.auth.credentials.passwords import hash_password
from hatchway.auth.identity.base import ClientInfo
from hatchway.cli.commands import user_twofactor
from hatchway.cli.commands._accounts import (
    PasswordStdinOption,
    audit,
    errors,
    open_store,
    read_password,
    table,
    when,
    who,
)
from hatchway.cli.common import ConfigOption, DataOption
from hatchway.metadata import AccountKind, MetadataStore

app = typer.Typer(
    help="Manage user and robot accounts of the built-in store.", no_args_is_help=True
)

NameArg = Annotated[str, typer.Argument(help="Account name (the docker login username).")]


@app.command("add")
def add(
    name: NameArg,
    admin: Annotated[bool, typer.Option("--admin", help="Make the account an admin.")] = False,
    password_stdin: PasswordStdinOption = False,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Add a user; the password is prompted for (twice) or read from stdin."""
    store = open_store(config, data)
    password = read_password(password_stdin)
    with errors():
        store.accounts.create(name, password_hash=hash_password(password), admin=admin)
        audit(store, "user.add", name, admin=admin)
    typer.echo(f"Added user {name}{' (admin)' if admin else ''}.")


@app.command("add-robot")
def add_robot(
    name: NameArg,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Add a robot account: no password; it logs in with tokens (hatchway token create)."""
    store = open_store(config, data)
    with errors():
        store.accounts.create(name, kind=AccountKind.ROBOT)
        audit(store, "user.add", name, kind="robot")
    typer.echo(
        f"Added robot {name}. Give it a token: "
        f"hatchway token create --user {name} --name NAME --scope 'repository:NAME:pull'"
    )


@app.command("passwd")
def passwd(
    name: NameArg,
    password_stdin: PasswordStdinOption = False,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Set a user's password; its refresh tokens (docker sessions) are revoked."""
    store = open_store(config, data)
    with errors():
        store.accounts.require(name)
    password = read_password(password_stdin, "New password")
    with errors():
        store.accounts.set_password(name, hash_password(password))
        audit(store, "user.passwd", name)
    typer.echo(f"Password of {name} changed.")


@app.command("set-admin")
def set_admin(
    name: NameArg,
    off: Annotated[bool, typer.Option("--off", help="Remove the admin flag instead.")] = False,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Make an account an admin (or, with --off, no longer one)."""
    store = open_store(config, data)
    with errors():
        store.accounts.set_admin(name, not off)
        audit(store, "user.admin", name, admin=not off)
    typer.echo(f"{name} is {'no longer' if off else 'now'} an admin.")


def _admin_service(store: MetadataStore) -> tuple[AdminService, Actor]:
    """The admin service layer the API uses, acting for the OS user (``via: cli``)."""
    by = who()
    return AdminService(store, store.audit.record), Actor(
        by, admin=True, via="cli", auth="shell", client=ClientInfo(None, "hatchway-cli")
    )


@app.command("disable")
def disable(name: NameArg, config: ConfigOption = None, data: DataOption = None) -> None:
    """Disable an account: its password, tokens and sessions stop working (issued registry
    tokens within seconds) until `enable`; its docker sessions end for good."""
    store = open_store(config, data)
    service, actor = _admin_service(store)
    with errors():
        service.set_disabled(actor, name, True)
    typer.echo(f"Disabled {name}.")


@app.command("enable")
def enable(name: NameArg, config: ConfigOption = None, data: DataOption = None) -> None:
    """Enable a disabled account again (its password and tokens work again)."""
    store = open_store(config, data)
    service, actor = _admin_service(store)
    with errors():
        service.set_disabled(actor, name, False)
    typer.echo(f"Enabled {name}.")


@app.command("del")
def delete(
    name: NameArg,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Delete an account with its tokens and group memberships."""
    store = open_store(config, data)
    with errors():
        store.accounts.delete(name)
        audit(store, "user.del", name)
    typer.echo(f"Deleted {name}.")


@app.command("list")
def list_(
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """List accounts, their kind, admin flag, groups and state (active or disabled)."""
    store = open_store(config, data)
    with errors():
        found = store.accounts.list()
    table(
        ["NAME", "KIND", "ADMIN", "GROUPS", "CREATED", "STATE"],
        [
            [
                a.name,
                a.kind.value,
                "yes" if a.admin else "no",
                ",".join(sorted(a.groups)) or "-",
                when(a.created_at),
                "disabled" if a.disabled else "active",
            ]
            for a in found
        ],
    )


app.command("twofactor-reset")(user_twofactor.twofactor_reset)
