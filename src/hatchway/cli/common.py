"""Options and helpers shared by commands: --config/--data and config loading.

Imported by client commands too (``fail``), so the configuration (pydantic, YAML) is
imported only when a command loads it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from hatchway.config.model import Config

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration (distribution config.yml shape).",
        envvar="HATCHWAY_CONFIG",
        dir_okay=False,
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Data directory (storage.filesystem.rootdirectory; with storage.s3 the local "
        "directory, storage.localdirectory).",
        file_okay=False,
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def load_config(config: Path | None, data: Path | None, **extra: Any) -> Config:
    from hatchway.config import load as config_load
    from hatchway.errors import ConfigError

    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    local_dir = None if data is None else str(data)
    try:
        return config_load.load(config, overrides=overrides, local_dir=local_dir)
    except ConfigError as exc:
        raise fail(f"invalid configuration\n{exc}", 2) from None


def setup_logging(config: Config) -> None:
    level = {
        "error": logging.ERROR,
        "warn": logging.WARNING,
        "info": logging.INFO,
        "debug": logging.DEBUG,
    }[config.log.level]
    if config.log.formatter == "text":
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    else:
        fmt = (
            '{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s",'
            '"msg":%(message_json)s}'
        )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JSONFormatter(fmt) if config.log.formatter != "text" else logging.Formatter(fmt)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json

        record.message_json = json.dumps(record.getMessage())
        return super().format(record)
