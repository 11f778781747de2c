"""``hatchway pull REF DEST``: an image from a registry into an OCI layout or a tar."""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.cli.commands import _remote


def pull(
    ref: Annotated[str, typer.Argument(help="host\\[:port]/name\\[:tag|@digest]")],
    dest: Annotated[
        str,
        typer.Argument(
            help="OCI layout directory, or a .tar written as docker save does (docker load "
            "reads it): \\[oci:|docker-archive:]PATH\\[:NAME]."
        ),
    ],
    insecure: _remote.InsecureOption = False,
    username: _remote.UsernameOption = None,
    password_stdin: _remote.PasswordStdinOption = False,
    jobs: _remote.JobsOption = 3,
    platform: _remote.PlatformOption = None,
    limit_rate: _remote.LimitRateOption = None,
    retries: _remote.RetriesOption = 8,
) -> None:
    """Pull an image (an index with all its images) and print its digest. A tar holds one
    image: of an index, this machine's platform unless --platform says otherwise."""
    from hatchway.client.session import RetryPolicy
    from hatchway.client.transfer import Options
    from hatchway.client.transfer import pull as pull_image

    source = _remote.reference(ref)
    options = Options(
        jobs=jobs,
        retry=RetryPolicy(attempts=retries),
        limit_rate=_remote.size(limit_rate, "--limit-rate") if limit_rate else None,
        platform=platform,
    )
    auth = _remote.auth(source.registry, username, password_stdin)
    with _remote.reporting() as reporter:
        options.reporter = reporter
        digest = pull_image(source, dest, auth=auth, insecure=insecure, options=options)
    typer.echo(digest)
