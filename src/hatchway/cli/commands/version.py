"""``hatchway version``."""

from __future__ import annotations

import typer

from hatchway import __version__


def version() -> None:
    """Print the hatchway version."""
    typer.echo(__version__)
