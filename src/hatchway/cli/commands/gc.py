"""``hatchway gc``: delete blobs no manifest references, and stale upload sessions."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer

from hatchway.cli.common import ConfigOption, DataOption, load_config
from hatchway.config.model import Config, parse_duration
from hatchway.http.app import build_registry
from hatchway.metadata import MetadataStore
from hatchway.metadata.engine import database_dsn
from hatchway.observability.gc import record_run
from hatchway.registry.gc import GCReport, collect


def gc(
    config: ConfigOption = None,
    data: DataOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, delete nothing.")] = False,
    upload_age: Annotated[
        str | None,
        typer.Option(
            help="Delete upload sessions older than this (default: "
            "storage.maintenance.uploadpurging.age, 168h)."
        ),
    ] = None,
    grace: Annotated[str, typer.Option(help="Keep blobs touched more recently than this.")] = "1h",
) -> None:
    """Mark blobs referenced by any manifest, sweep the rest. Safe while serving."""
    cfg = load_config(config, data)
    registry = build_registry(cfg)
    try:
        age = (
            parse_duration(upload_age) if upload_age else cfg.storage.maintenance.uploadpurging.age
        )
        grace_s = parse_duration(grace)
    except ValueError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    started = time.monotonic()
    try:
        report = asyncio.run(collect(registry, dry_run=dry_run, upload_age=age, grace=grace_s))
    except BaseException:
        _record(cfg, started, dry_run, None)
        raise
    _record(cfg, started, dry_run, report)
    verb = "would delete" if dry_run else "deleted"
    for d in report.blobs_deleted:
        typer.echo(f"{verb} blob {d}")
    for u in report.uploads_deleted:
        typer.echo(f"{verb} upload {u}")
    typer.echo(
        f"{report.repositories} repositories, {report.manifests} manifests, "
        f"{report.marked} blobs in use; {verb} {len(report.blobs_deleted)} blobs "
        f"({report.bytes_freed} bytes), {report.links_deleted} layer links, "
        f"{len(report.uploads_deleted)} upload sessions"
        + (f", aborted {report.writes_aborted} unfinished writes" if report.writes_aborted else "")
    )


def _record(cfg: Config, started: float, dry_run: bool, report: GCReport | None) -> None:
    """For every server's /metrics (hatchway_gc_*); a database problem only warns."""
    try:
        store = MetadataStore(database_dsn(cfg))
    except Exception as exc:
        typer.echo(f"Warning: gc run not recorded for metrics ({type(exc).__name__})", err=True)
        return
    try:
        record_run(
            store.gc_runs,
            started=started,
            outcome="success" if report is not None else "failure",
            dry_run=dry_run,
            blobs_deleted=len(report.blobs_deleted) if report is not None else 0,
            bytes_freed=report.bytes_freed if report is not None else 0,
        )
    except Exception as exc:
        typer.echo(f"Warning: gc run not recorded for metrics ({type(exc).__name__})", err=True)
    finally:
        store.dispose()
