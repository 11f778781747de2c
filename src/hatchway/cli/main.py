"""Entry point of the ``hatchway`` console script."""

from __future__ import annotations

import typer

from hatchway import __version__
from hatchway.cli.commands import (
    access,
    audit,
    delete,
    gc,
    group,
    inspect,
    keys,
    login,
    logout,
    pull,
    push,
    serve,
    tags,
    token,
    user,
)

app = typer.Typer(
    name="hatchway",
    help="A private container registry with the gate built in.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(name="serve")(serve.serve)
app.command(name="gc")(gc.gc)
app.command(name="login")(login.login)
app.command(name="logout")(logout.logout)
app.command(name="push")(push.push)
app.command(name="pull")(pull.pull)
app.command(name="tags")(tags.tags)
app.command(name="inspect")(inspect.inspect)
app.command(name="delete")(delete.delete)
app.add_typer(user.app, name="user", help="Accounts in the built-in store.")
app.add_typer(group.app, name="group", help="Groups of accounts.")
app.add_typer(token.app, name="token", help="Personal access tokens and robot tokens.")
app.add_typer(
    access.app, name="access", help="Access rules: check decisions, manage the database's rules."
)
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys", help="Token signing keys.")


@app.command()
def version() -> None:
    """Print the hatchway version."""
    typer.echo(__version__)


def main() -> None:
    app()
