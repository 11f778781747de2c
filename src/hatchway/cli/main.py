"""Entry point of the ``hatchway`` console script.

Every command is one line below: its name, its help line for ``hatchway --help``, and where
it lives if not in ``commands/<name>.py`` as the function ``<name>``. A command's module is
imported only when it runs, so client commands never load the server.
"""

from __future__ import annotations

import typer

from hatchway.cli.lazy import command, lazy_group

COMMANDS = [
    command("serve", "Serve the registry (OCI distribution API v2) until interrupted."),
    command("gc", "Mark blobs referenced by any manifest, sweep the rest. Safe while serving."),
    command("login", "Log in to a registry; credentials go where docker would put them."),
    command("logout", "Log out from a registry (the credentials are removed from file or helper)."),
    command("push", "Push an image (an index with all its images) and print its digest."),
    command("pull", "Pull an image (an index with all its images) and print its digest."),
    command("tags", "List the tags of a repository."),
    command("inspect", "Print a manifest: its digest and media type, then the JSON."),
    command("delete", "Delete the manifest a tag or digest names."),
    command("audit", "Print audit events, newest first; purge old ones.", "audit:app"),
    command("version", "Print the hatchway version."),
    command("user", "Accounts in the built-in store.", "user:app"),
    command("group", "Groups of accounts.", "group:app"),
    command("token", "Personal access tokens and robot tokens.", "token:app"),
    command("access", "Access rules: check decisions, manage the database's rules.", "access:app"),
    command("keys", "Token signing keys.", "keys:app"),
    command("session", "Login sessions (refresh tokens).", "session:app"),
    command("index", "The repository index (what the API and web UI list).", "index:app"),
]

app = typer.Typer(
    name="hatchway",
    help="A private container registry with the gate built in.",
    cls=lazy_group(COMMANDS),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    pass


def main() -> None:
    app()


if __name__ == "__main__":
    main()
