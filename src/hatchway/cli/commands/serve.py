"""``hatchway serve``: run the registry."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from hatchway.cli.common import ConfigOption, DataOption, fail, load_config, setup_logging
from hatchway.config.model import Config
from hatchway.http.app import build_registry, create_app
from hatchway.http.server import serve as run_server
from hatchway.storage.driver import StorageError

log = logging.getLogger("hatchway")


def _banner(config: Config, workers: int) -> str:
    host, port = config.http.host_port()
    scheme = "https" if config.http.tls else "http"
    shown = f"[{host}]" if ":" in host else host
    driver, options = config.storage.driver()
    where = os.path.abspath(options["rootdirectory"]) if driver == "filesystem" else "memory"
    lines = [
        f"hatchway serving the OCI distribution API at {scheme}://{shown}:{port}/v2/ "
        f"({workers} worker{'s' if workers != 1 else ''}; storage: {driver} {where})",
        "",
        "WARNING: no auth section is configured: ANYONE who can reach this address can",
        "WARNING: push, pull and delete. Keep it on a trusted network (127.0.0.1 by default).",
        "",
        "No login is needed. Try:",
    ]
    insecure = "" if config.http.tls else " --dest-tls-verify=false"
    lines.append(
        f"  skopeo copy{insecure} docker-archive:image.tar docker://{shown}:{port}/myimage:latest"
    )
    return "\n".join(lines)


def serve(
    config: ConfigOption = None,
    addr: Annotated[str | None, typer.Option(help="HOST:PORT to listen on (http.addr).")] = None,
    data: DataOption = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (http.workers); 0 = one per core.")
    ] = None,
) -> None:
    """Serve the registry (OCI distribution API v2) until interrupted."""
    cfg = load_config(config, data, **{"http.addr": addr, "http.workers": workers})
    setup_logging(cfg)
    count = cfg.http.workers or os.cpu_count() or 1
    try:
        # Fail fast in the supervisor on unusable storage rather than in every worker.
        build_registry(cfg)
    except (OSError, StorageError) as exc:
        raise fail(f"storage is not usable: {exc}") from None
    try:
        typer.echo(_banner(cfg, count), err=True)
        run_server(cfg, create_app, count)
    except OSError as exc:
        raise fail(f"cannot listen on {cfg.http.addr}: {exc.strerror}") from None
