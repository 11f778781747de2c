"""Driver name -> factory. Explicit, so no driver registers itself by import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hatchway.storage.driver import StorageDriver
from hatchway.storage.filesystem import FilesystemDriver
from hatchway.storage.memory import MemoryDriver


def _filesystem(options: dict[str, Any]) -> StorageDriver:
    return FilesystemDriver(
        str(options["rootdirectory"]),
        group_commit=options.get("groupcommit", "auto"),
        direct_io=bool(options.get("directio", True)),
    )


def _memory(options: dict[str, Any]) -> StorageDriver:
    return MemoryDriver()


def _s3(options: dict[str, Any]) -> StorageDriver:
    import os

    from hatchway.storage.locks import FileLocks, LockService
    from hatchway.storage.pglocks import PostgresLocks, is_postgres
    from hatchway.storage.s3 import S3Driver, S3Options

    settings = {k: v for k, v in options.items() if k not in ("localdirectory", "lockdsn")}
    s3 = S3Options(**settings)
    # Namespaced by bucket and root, as two stores may share one directory or database.
    namespace = f"{s3.regionendpoint or s3.region}/{s3.bucket}/{s3.rootdirectory.strip('/')}"
    locks: LockService
    if is_postgres(options.get("lockdsn")):
        # A PostgreSQL database (database.dsn) is what replicas on several machines
        # share: its advisory locks exclude all of them (see storage/pglocks.py).
        locks = PostgresLocks(str(options["lockdsn"]), namespace)
    else:
        # Locks exclude the processes of this machine that share the local directory.
        locks = FileLocks(os.path.join(str(options["localdirectory"]), "locks"), namespace)
    return S3Driver(s3, locks)


FACTORIES: dict[str, Callable[[dict[str, Any]], StorageDriver]] = {
    "filesystem": _filesystem,
    "inmemory": _memory,
    "s3": _s3,
}


def create(name: str, options: dict[str, Any]) -> StorageDriver:
    return FACTORIES[name](options)
