"""Entry point of the ``hatchway`` console script."""

from __future__ import annotations

import typer

from hatchway import __version__
from hatchway.cli.commands import gc, serve

app = typer.Typer(
    name="hatchway",
    help="A private container registry with the gate built in.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(name="serve")(serve.serve)
app.command(name="gc")(gc.gc)


@app.command()
def version() -> None:
    """Print the hatchway version."""
    typer.echo(__version__)


def main() -> None:
    app()
