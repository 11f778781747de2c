"""``hatchway tags REPO``: list a repository's tags, one per line."""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.cli.commands import _remote


def tags(
    repo: Annotated[str, typer.Argument(help="host\\[:port]/name")],
    insecure: _remote.InsecureOption = False,
    username: _remote.UsernameOption = None,
    password_stdin: _remote.PasswordStdinOption = False,
) -> None:
    """List the tags of a repository."""
    from hatchway.client.remote import list_tags
    from hatchway.client.session import RetryPolicy, open_client

    target = _remote.reference(repo, bare=True)
    if target.tag or target.digest:
        raise _remote.usage("tags takes a repository (host/name), not an image reference")
    auth = _remote.auth(target.registry, username, password_stdin)
    with _remote.client_errors(), open_client(target.registry, auth, insecure=insecure) as c:
        found = list_tags(c, target.repository, RetryPolicy())
    for tag in found:
        typer.echo(tag)
