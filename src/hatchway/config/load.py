"""Load the configuration: YAML file, then ``HATCHWAY_*`` environment, then CLI flags.

Everything is validated before the server starts, with errors that name the bad key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hatchway.config.model import Config
from hatchway.errors import ConfigError

ENV_PREFIX = "HATCHWAY_"

# What `hatchway serve` runs on with no --config: a ready-to-use local registry.
EMBEDDED_DEFAULTS: dict[str, Any] = {
    "version": "0.1",
    "storage": {"filesystem": {"rootdirectory": "./hatchway-data"}, "delete": {"enabled": True}},
    "http": {"addr": "127.0.0.1:5000"},
    # Secure by default: the built-in token service, accounts in the local database.
    "auth": {"token": {}},
}


def _env_path(model: type[BaseModel], tokens: list[str]) -> list[str] | None:
    """Map ``["storage","filesystem","rootdirectory"]``-style tokens onto model fields.

    Field names may themselves contain "_", so join tokens greedily, longest first.
    """
    path: list[str] = []
    current: type[BaseModel] | None = model
    i = 0
    while i < len(tokens):
        if current is None:
            return None
        for j in range(len(tokens), i, -1):
            key = "_".join(tokens[i:j])
            if key in current.model_fields:
                path.append(key)
                annotation = current.model_fields[key].annotation
                current = _model_in(annotation)
                i = j
                break
        else:
            return None
    return path


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    sections = set(Config.model_fields)
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        tokens = name[len(ENV_PREFIX) :].lower().split("_")
        # Other HATCHWAY_* variables (credentials, passphrases) are not config keys.
        if tokens[0] not in sections:
            continue
        path = _env_path(Config, tokens)
        if path is None:
            raise ConfigError(f"{name}: no such configuration key")
        # Kept as text: the typed model converts "true" or "8" where a field wants it,
        # and a path such as "/srv/reg #1" or an address "[::1]:5000" stays intact.
        _set(data, path, raw)


def _set(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``data[path[0]][path[1]]... = value``, creating mappings on the way."""
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _format_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    local_dir: str | None = None,
) -> Config:
    """Build the effective configuration. ``overrides`` maps dotted keys to values;
    ``local_dir`` (``--data``) is the filesystem driver's root, or with another driver
    the local directory (``storage.localdirectory``): it never changes the driver."""
    source = str(path) if path else "defaults"
    if path is None:
        data: dict[str, Any] = yaml.safe_load(yaml.safe_dump(EMBEDDED_DEFAULTS))
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping")
        data = loaded
    _apply_env(data, os.environ if environ is None else environ)
    for dotted, value in (overrides or {}).items():
        _set(data, dotted.split("."), value)
    if local_dir is not None:
        storage = data.get("storage")
        other = isinstance(storage, dict) and any(
            storage.get(name) is not None for name in ("s3", "inmemory")
        )
        key = "storage.localdirectory" if other else "storage.filesystem.rootdirectory"
        _set(data, key.split("."), local_dir)
    try:
        config = Config.model_validate(data)
        config.storage.driver()
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None
    except ValueError as exc:
        raise ConfigError(f"{source}: storage: {exc}") from None
    return config
