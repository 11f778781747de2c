"""The directory where a ``hatchway serve``'s workers keep their metric values.

One per serve process (``metrics-<pid>``), in the local data directory's scratch area
(``<rootdirectory>/~tmp``, beside the filesystem driver's temporary files; a temporary
directory with other drivers), made empty at start and removed at exit. Directories left
by a serve that was killed are removed by the next start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from hatchway.config.model import Config

PREFIX = "metrics-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scratch_area(config: Config) -> Path:
    driver, options = config.storage.driver()
    if driver == "filesystem":
        return Path(options["rootdirectory"]).absolute() / "~tmp"
    return Path(tempfile.gettempdir())


def prepare(config: Config) -> Path:
    """An empty directory for this process; stale ones of dead serves removed."""
    area = scratch_area(config)
    area.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in area.glob(PREFIX + "*"):
        pid = old.name[len(PREFIX) :]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    directory = area / f"{PREFIX}{os.getpid()}"
    directory.mkdir(mode=0o700)
    return directory


def remove(directory: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(directory)
