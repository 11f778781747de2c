"""Plain-text output the account commands share, local or through ``--registry`` (no
server imports here: ``hatchway token ... --registry`` must start without them)."""

from __future__ import annotations

from datetime import datetime

import typer

__all__ = ["table", "when"]


def when(value: datetime | None, empty: str = "-") -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else empty


def table(header: list[str], rows: list[list[str]]) -> None:
    """Print aligned columns (plain text: easy to read and to ``grep``/``awk``)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
