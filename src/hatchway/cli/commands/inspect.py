"""``hatchway inspect REF``: a manifest or index, its digest and media type."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from hatchway.cli.commands import _remote


def inspect(
    ref: Annotated[str, typer.Argument(help="host\\[:port]/name\\[:tag|@digest]")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the manifest's exact bytes, nothing else.")
    ] = False,
    insecure: _remote.InsecureOption = False,
    username: _remote.UsernameOption = None,
    password_stdin: _remote.PasswordStdinOption = False,
) -> None:
    """Print a manifest: its digest and media type, then the JSON (--raw: the bytes as
    stored, which is what the digest is of)."""
    from hatchway.client.remote import get_manifest
    from hatchway.client.session import RetryPolicy, open_client

    target = _remote.reference(ref)
    auth = _remote.auth(target.registry, username, password_stdin)
    with _remote.client_errors(), open_client(target.registry, auth, insecure=insecure) as c:
        got = get_manifest(c, target.repository, target.reference, RetryPolicy())
    if raw:
        sys.stdout.buffer.write(got.data)
        sys.stdout.flush()
        return
    typer.echo(f"Digest: {got.digest}")
    typer.echo(f"Media-Type: {got.media_type}")
    typer.echo(f"Size: {len(got.data)}")
    try:
        typer.echo(json.dumps(json.loads(got.data), indent=2))
    except ValueError:
        typer.echo(got.data.decode(errors="replace"))
