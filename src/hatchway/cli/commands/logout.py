"""``hatchway logout``: forget a registry's credentials, and revoke its refresh token.

docker only deletes the local copy; a refresh token copied elsewhere would stay valid
for months, so hatchway also revokes it where the token service allows (RFC 7009).
"""

from __future__ import annotations

import typer

from hatchway.cli.commands.login import InsecureOption, ServerArg
from hatchway.cli.common import fail
from hatchway.client.dockerconfig import normalize_server


def logout(server: ServerArg = None, insecure: InsecureOption = False) -> None:
    """Log out from a registry (the credentials are removed from file or helper)."""
    from hatchway.client.credstore import CredentialStoreError
    from hatchway.client.dockerconfig import DockerConfigError
    from hatchway.client.login import logout as do_logout

    target = server or normalize_server(None)
    typer.echo(f"Removing login credentials for {normalize_server(target)}")
    try:
        result = do_logout(target, insecure=insecure)
    except (CredentialStoreError, DockerConfigError) as exc:
        raise fail(str(exc)) from None
    if result.warning:
        typer.echo(f"WARNING: {result.warning}", err=True)
    if not result.removed:
        typer.echo(f"Not logged in to {result.server}")
