"""``hatchway index rebuild``: make the repository index again from storage.

The index (``metadata/repoindex.py``) is what ``/api/v1/repositories`` and the web UI list
from. The server keeps it in step with every push and delete; rebuild it after anything
else changed storage (a restore, a store written by distribution, a database swapped),
or to be sure. Idempotent and safe while the registry serves: each repository is read and
written under the same lock the server's index updates take, and who pushed what is kept
where the index already knew it.
"""

from __future__ import annotations

import asyncio

import typer
from sqlalchemy.exc import SQLAlchemyError

from hatchway.cli.common import ConfigOption, DataOption, fail, load_config
from hatchway.http.app import build_registry
from hatchway.metadata import MetadataStore, database_dsn

app = typer.Typer(help="The repository index (what the API and web UI list).", no_args_is_help=True)


@app.command("rebuild")
def rebuild(config: ConfigOption = None, data: DataOption = None) -> None:
    """Index every repository in storage again, drop those gone. Safe while serving."""
    cfg = load_config(config, data)
    try:
        store = MetadataStore(database_dsn(cfg))
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"cannot open the database: {exc}") from None
    try:
        registry = build_registry(cfg)
        indexer = registry.attach_index(store.index)
        report = asyncio.run(indexer.rebuild())
    except SQLAlchemyError as exc:
        raise fail(f"the database failed: {exc}") from None
    finally:
        store.dispose()
    for name in report.dropped:
        typer.echo(f"dropped {name} (no longer in storage)")
    typer.echo(
        f"indexed {report.repositories} repositories, {report.manifests} manifests, "
        f"{report.tags} tags; dropped {len(report.dropped)}"
    )
