"""``hatchway delete REF``: delete a manifest, and with it every tag that points to it."""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.cli.commands import _remote


def delete(
    ref: Annotated[str, typer.Argument(help="host\\[:port]/name\\[:tag|@digest]")],
    insecure: _remote.InsecureOption = False,
    username: _remote.UsernameOption = None,
    password_stdin: _remote.PasswordStdinOption = False,
) -> None:
    """Delete the manifest a tag or digest names (as skopeo delete: the tag alone cannot
    be removed, the manifest and all its tags go). Blobs stay until ``hatchway gc``."""
    from hatchway.client.remote import delete_manifest
    from hatchway.client.session import RetryPolicy, open_client

    target = _remote.reference(ref)
    auth = _remote.auth(target.registry, username, password_stdin)
    with _remote.client_errors(), open_client(target.registry, auth, insecure=insecure) as c:
        digest = delete_manifest(c, target, RetryPolicy())
    typer.echo(f"Deleted {target.registry}/{target.repository}@{digest}")
