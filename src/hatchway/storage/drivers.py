"""Driver name -> factory. Explicit, so no driver registers itself by import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hatchway.storage.driver import StorageDriver
from hatchway.storage.filesystem import FilesystemDriver
from hatchway.storage.memory import MemoryDriver


def _filesystem(options: dict[str, Any]) -> StorageDriver:
    return FilesystemDriver(
        str(options["rootdirectory"]), group_commit=options.get("groupcommit", "auto")
    )


def _memory(options: dict[str, Any]) -> StorageDriver:
    return MemoryDriver()


FACTORIES: dict[str, Callable[[dict[str, Any]], StorageDriver]] = {
    "filesystem": _filesystem,
    "inmemory": _memory,
}


def create(name: str, options: dict[str, Any]) -> StorageDriver:
    return FACTORIES[name](options)
