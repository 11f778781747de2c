"""``hatchway user twofactor-reset NAME``: remove an account's second factor (lost phone
and recovery codes), on the local database, audited. Registered on the ``user`` group."""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.cli.commands._accounts import audit, errors, open_store
from hatchway.cli.common import ConfigOption, DataOption, fail


def twofactor_reset(
    name: Annotated[str, typer.Argument(help="Account name.")],
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Remove an account's two-factor authentication (it can then sign in with its
    password and enrol again)."""
    store = open_store(config, data)
    with errors():
        if store.accounts.get(name) is None:
            raise fail(f"no account named {name[:100]!r}")
        removed = store.twofactor.remove(name)
        audit(store, "twofactor.reset", name, via="cli", removed=removed)
    if removed:
        typer.echo(f"Removed two-factor authentication of {name}.")
    else:
        typer.echo(f"{name} had no two-factor authentication; nothing changed.")
