"""Private files: 0700 directories, 0600 files, atomic replacement, an exclusive lock, and
the key file (refused when its group or others may read it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hatchway.client.secretstore.base import ENV_KEYFILE, StoreError
from hatchway.client.secretstore.sealed import KEYFILE_SIZE


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing; the directory made for us is 0700."""
    if path.is_dir():
        return
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc.strerror}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a 0600 temp file beside it, fsync, rename, fsync dir."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def read_optional(path: Path) -> bytes | None:
    """The bytes of ``path``, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on ``<path>.lock`` (a lock file that is never removed, so
    every writer locks the same inode even though ``path`` itself is replaced)."""
    private_dir(path.parent)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_keyfile(path: Path) -> bytes | None:
    """The key file's bytes, or None if it does not exist. Refused unless it is a regular
    file owned by us that neither group nor others can access."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot open key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"key file {path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise StoreError(f"key file {path} is not owned by the current user")
        if mode & 0o077:
            raise StoreError(
                f"key file {path} is accessible by group or others (mode {mode:04o});"
                f" run: chmod 600 {path}"
            )
        data = f.read()
    if len(data) < KEYFILE_SIZE:
        raise StoreError(f"key file {path} is too short (at least {KEYFILE_SIZE} bytes needed)")
    return data


def create_keyfile(path: Path) -> bytes:
    """Make a 0600 key file of random bytes, or read the one another process made first.

    The bytes go to a temp file that is then hard-linked into place, so no reader ever sees
    a partial key; its directory is created 0700 if missing."""
    private_dir(path.parent)
    key = os.urandom(KEYFILE_SIZE)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(key)
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, path)
    except FileExistsError:
        existing = read_keyfile(path)
        if existing is None:
            raise StoreError(f"key file {path} vanished while being created") from None
        return existing
    except OSError as exc:
        raise StoreError(f"cannot create key file {path} ({ENV_KEYFILE}): {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)
    return key
