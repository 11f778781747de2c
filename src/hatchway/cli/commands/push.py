"""``hatchway push SOURCE REF``: an OCI layout or ``docker save`` tar into a registry."""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.cli.commands import _remote


def push(
    source: Annotated[
        str,
        typer.Argument(
            help="OCI layout directory or docker save tar: \\[oci:|docker-archive:]PATH\\[:NAME]."
        ),
    ],
    ref: Annotated[str, typer.Argument(help="host\\[:port]/name\\[:tag]")],
    insecure: _remote.InsecureOption = False,
    username: _remote.UsernameOption = None,
    password_stdin: _remote.PasswordStdinOption = False,
    chunk_size: Annotated[
        str, typer.Option(help="Upload chunk size; each chunk is one resumable PATCH.")
    ] = "16M",
    jobs: _remote.JobsOption = 3,
    mount_from: Annotated[
        list[str] | None,
        typer.Option("--mount-from", help="A repository of the same registry to mount blobs from."),
    ] = None,
    platform: _remote.PlatformOption = None,
    limit_rate: _remote.LimitRateOption = None,
    retries: _remote.RetriesOption = 8,
) -> None:
    """Push an image (an index with all its images) and print its digest."""
    from hatchway.client.session import RetryPolicy
    from hatchway.client.transfer import Options
    from hatchway.client.transfer import push as push_image

    target = _remote.reference(ref)
    options = Options(
        chunk_size=_remote.size(chunk_size, "--chunk-size"),
        jobs=jobs,
        retry=RetryPolicy(attempts=retries),
        limit_rate=_remote.size(limit_rate, "--limit-rate") if limit_rate else None,
        mount_from=tuple(mount_from or ()),
        platform=platform,
    )
    auth = _remote.auth(target.registry, username, password_stdin)
    with _remote.reporting() as reporter:
        options.reporter = reporter
        digest = push_image(source, target, auth=auth, insecure=insecure, options=options)
    typer.echo(digest)
