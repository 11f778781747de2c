"""Filesystem driver: crash-safe by temp file + sync + rename + sync.

Small files and renames are made durable either by group commit (storage/groupsync.py:
one syncfs(2) round covers the writes of every concurrent request; ``groupcommit``) or
by fsyncing each file and its directory. Blob data is fsynced on its own when an upload
commits.

Small metadata operations call the OS directly (microseconds on a local disk); syncing,
creating and renaming files and bulk reads go to a thread so a slow disk or a journal
commit never stalls the event loop.

Private by default: a new root directory is made 0700, and what goes under it 0700
(directories) and 0600 (files); if the root gives its group read access (0750), so do
they (0750 and 0640). Never any bits for others (a umask can only take bits away).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import stat
import time
import uuid
import weakref
from collections.abc import AsyncIterator

from hatchway.storage.direct import open_direct
from hatchway.storage.driver import (
    DeferredContent,
    FileInfo,
    LockTimeoutError,
    PathNotFoundError,
    Staged,
    StorageError,
    check_path,
)
from hatchway.storage.fswriter import FilesystemWriter, in_sync_thread
from hatchway.storage.groupsync import GroupSync, syncfs

READ_CHUNK = 1024 * 1024
# A busy lock is polled (never waited for in a thread, which could not be cancelled
# and would tie up the pool): first soon, then at most every 5 ms. Only one request per
# process polls a path (the others queue behind it), so polling costs a few system calls
# a millisecond at most, while a 50 ms step left a lock another worker had released
# idle for most of that step (32 pushes to one repository across two workers).
_LOCK_POLL_FIRST = 0.001
_LOCK_POLL_MAX = 0.005
# gc may remove a directory between our mkdir and our rename into it; try again.
_RENAME_ATTEMPTS = 3
# A directory's mtime has the filesystem's timestamp granularity (a clock tick on ext4,
# seconds on some), so two changes close together can leave the same mtime: only one
# older than this is trusted to change again with the next change.
_MTIME_SETTLED = 2.0


def loose_permissions(root: str) -> str | None:
    """A warning if the existing root directory is open beyond 0750 (group write, or
    anything for others), else None."""
    try:
        mode = stat.S_IMODE(os.stat(root).st_mode)
    except OSError:
        return None
    if not mode & 0o027:
        return None
    return (
        f"storage root {root} has mode {mode:04o}: other users may read or change images; "
        f"chmod 700 it (750 to share it with its group)"
    )


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _own_filesystem(directory: str) -> bool:
    """Whether ``directory`` is on another filesystem than "/". A syncfs round waits for
    every write pending on its filesystem: on a volume of its own those are the
    registry's; on the system's, everything else the machine writes too. Measured on
    this project's machine (bench/README.md): group commit on its own ext4 volume 1.5x
    the manifest PUTs/s at c=32 of one fsync per file; on "/" 0.7x while other programs
    wrote a lot, 1.6-2.2x while they did not (hence ``GroupSync.slow`` there)."""
    try:
        return os.stat(directory).st_dev != os.stat("/").st_dev
    except OSError:
        return False


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return  # deleted meanwhile (gc): nothing of it is left to make durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _StagedFile:
    """A durable scratch file waiting to be renamed to ``full``."""

    def __init__(self, driver: FilesystemDriver, path: str, tmp: str, full: str) -> None:
        self._driver, self._path, self._tmp, self._full = driver, path, tmp, full
        self._done = False

    async def publish(self) -> None:
        if self._done:
            return
        self._done = True
        await in_sync_thread(self._driver._publish_staged, self._path, self._tmp, self._full)

    async def discard(self) -> None:
        if not self._done:
            self._done = True
            _unlink_quietly(self._tmp)


class FilesystemDriver:
    name = "filesystem"

    def __init__(
        self, root: str, group_commit: bool | str = "auto", direct_io: bool = True
    ) -> None:
        self.root = os.path.abspath(root)
        self._direct_io = direct_io
        with contextlib.suppress(FileExistsError):
            os.makedirs(self.root, 0o700)  # the mode applies to the root, not its parents
        shared = stat.S_IMODE(os.stat(self.root).st_mode) & 0o040
        self._dir_mode = 0o750 if shared else 0o700
        self._file_mode = 0o640 if shared else 0o600
        # Scratch space for atomic writes and deletes, on the same filesystem so rename
        # is atomic. "~" can never appear in a key, so it never collides with data.
        self._scratch = os.path.join(self.root, "~tmp")
        os.makedirs(self._scratch, self._dir_mode, exist_ok=True)
        # "auto": rounds always on a volume of its own; on the system's filesystem only
        # while they stay fast, as other programs' writes there slow every round.
        self._adaptive = group_commit == "auto" and not _own_filesystem(self.root)
        self._group = GroupSync(self.root) if group_commit and syncfs is not None else None
        # path -> this process's queue for its flock, kept only while someone holds it
        self._local_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _full(self, path: str) -> str:
        return self.root + check_path(path)

    def _grouped(self) -> GroupSync | None:
        """The group rounds to use now, or None for one fsync per file."""
        group = self._group
        if group is not None and self._adaptive and group.slow():
            return None
        return group

    def _scratch_name(self) -> str:
        return os.path.join(self._scratch, uuid.uuid4().hex)

    def _makedirs(
        self, directory: str, sync: bool = True, created: list[str] | None = None
    ) -> None:
        """Create missing directories, fsyncing each parent so the new entries survive
        (unless ``sync`` is False: the caller makes them durable with a group round;
        or ``created`` is given: the parents to fsync are added to it, for later)."""
        missing = []
        while not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for new in reversed(missing):
            try:
                os.mkdir(new, self._dir_mode)
            except FileExistsError:
                if not os.path.isdir(new):
                    raise StorageError(f"{new[len(self.root) :]} is a file") from None
                continue
            except NotADirectoryError:
                raise StorageError(f"a parent of {new[len(self.root) :]} is a file") from None
            if created is not None:
                created.append(os.path.dirname(new))
            elif sync:
                _fsync_dir(os.path.dirname(new))

    def _rename_into(self, source: str, dest: str, sync: bool = True) -> None:
        """rename(2) into ``dest``'s directory, made again if a concurrent delete took it."""
        for attempt in range(_RENAME_ATTEMPTS):
            try:
                self._makedirs(os.path.dirname(dest), sync)
                os.replace(source, dest)
            except FileNotFoundError:
                if attempt == _RENAME_ATTEMPTS - 1 or not os.path.exists(source):
                    raise
            else:
                return

    def local_path(self, path: str) -> str | None:
        return self._full(path)

    def _try_lock(self, path: str, full: str) -> int | None:
        """An fd holding ``full``'s flock, or None when another holder has it."""
        try:
            fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFoundError(path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # Locked, but the path may have been deleted (or replaced) while we opened it:
        # then we hold an orphan, which excludes nobody.
        try:
            current = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            os.close(fd)
            raise PathNotFoundError(path) from None
        held = os.fstat(fd)
        if (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
            os.close(fd)
            return None
        return fd

    @contextlib.asynccontextmanager
    async def lock(self, path: str, wait: float) -> AsyncIterator[None]:
        # flock(2) belongs to the open file description, so it excludes other
        # processes and other opens in this one alike, and dies with its process.
        # Requests of this process queue on an asyncio lock first, so that only one of
        # them polls the flock: 32 concurrent pushes of one image all touch the same
        # blobs, and each polling with back-off waited up to 50 ms past the release.
        full = self._full(path)
        deadline = time.monotonic() + wait
        local = self._local_locks.get(full)
        if local is None:
            local = self._local_locks[full] = asyncio.Lock()
        if local.locked():
            try:
                async with asyncio.timeout(wait):
                    await local.acquire()
            except TimeoutError:
                raise LockTimeoutError(path) from None
        else:
            await local.acquire()  # free: taken at once, no timer
        try:
            delay = _LOCK_POLL_FIRST
            while (fd := self._try_lock(path, full)) is None:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(path)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LOCK_POLL_MAX)
            try:
                yield
            finally:
                os.close(fd)
        finally:
            local.release()

    async def get_content(self, path: str) -> bytes:
        try:
            with open(self._full(path), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFoundError(path) from None

    def _put_content_sync(self, path: str, full: str, data: bytes) -> None:
        # New directories' parents are fsynced after the content, not as each is made:
        # the content's fsync commits the journal with the mkdirs in it (ext4, xfs), so
        # theirs then find nothing left to commit, one commit wait instead of two or three.
        parents: list[str] = []
        tmp = self._write_temp(path, full, data, sync=True, created=parents)
        try:
            for parent in parents:
                _fsync_dir(parent)
            self._publish(path, tmp, full, sync=True)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(os.path.dirname(full))

    def _write_temp(
        self,
        path: str,
        full: str,
        data: bytes,
        sync: bool = False,
        created: list[str] | None = None,
    ) -> str:
        """The content in a new scratch file, its directory made; both fsynced with
        ``sync`` (new directories' parents left in ``created`` if given), else left for
        the caller's group round to make durable."""
        self._makedirs(os.path.dirname(full), sync, created)
        tmp = self._scratch_name()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self._file_mode)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException as exc:
            _unlink_quietly(tmp)
            if isinstance(exc, OSError):
                raise StorageError(f"cannot write {path}: {exc.strerror}") from None
            raise
        return tmp

    def _publish(self, path: str, tmp: str, full: str, sync: bool = False) -> None:
        try:
            self._rename_into(tmp, full, sync)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}") from None

    async def put_content(self, path: str, data: bytes) -> None:
        full = self._full(path)
        group = self._grouped()
        if group is None:
            await in_sync_thread(self._put_content_sync, path, full, data)
            return
        await group.run(
            lambda: self._write_temp(path, full, data),
            lambda tmp: self._publish(path, tmp, full),
            _unlink_quietly,
        )

    async def stage_content(self, path: str, data: bytes) -> Staged:
        full = self._full(path)
        if self._grouped() is not None:  # a group round does it all at publish
            return DeferredContent(self, path, data)
        # The scratch file only: directories are made at publish, so a staged write that
        # is discarded leaves nothing behind (a tag's directory, say).
        # (``_write_temp`` makes the directory of the name it is given: here the
        # scratch directory, which exists.)
        tmp = await in_sync_thread(self._write_temp, path, self._scratch_name(), data, True)
        return _StagedFile(self, path, tmp, full)

    def _publish_staged(self, path: str, tmp: str, full: str) -> None:
        try:
            self._publish(path, tmp, full, sync=True)  # new directories synced as made
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(os.path.dirname(full))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        try:
            f = open(self._full(path), "rb")  # noqa: SIM115 - closed below, across awaits
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFoundError(path) from None
        try:
            f.seek(offset)
            while chunk := await asyncio.to_thread(f.read, READ_CHUNK):
                yield chunk
        finally:
            f.close()

    async def writer(self, path: str, append: bool = False) -> FilesystemWriter:
        full = self._full(path)
        self._makedirs(os.path.dirname(full))
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        try:
            fd = os.open(full, flags, self._file_mode)
        except OSError as exc:
            raise StorageError(f"cannot open {path} for writing: {exc.strerror}") from None
        direct = open_direct(full) if self._direct_io else None
        return FilesystemWriter(fd, full, os.fstat(fd).st_size, direct)

    async def stat(self, path: str) -> FileInfo:
        try:
            st = os.stat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFoundError(path) from None
        is_dir = stat.S_ISDIR(st.st_mode)
        return FileInfo(path, 0 if is_dir else st.st_size, st.st_mtime, is_dir)

    async def list(self, path: str) -> list[str]:
        base = "" if path == "/" else path
        full = self.root if path == "/" else self._full(path)
        try:
            names = os.listdir(full)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFoundError(path) from None
        return [f"{base}/{n}" for n in names if "~" not in n]

    async def list_version(self, path: str) -> str | None:
        full = self.root if path == "/" else self._full(path)
        try:
            st = os.stat(full)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFoundError(path) from None
        if not stat.S_ISDIR(st.st_mode):
            raise PathNotFoundError(path)
        # Adding or removing an entry sets the directory's mtime to "now"; a later
        # change than a settled mtime always moves it (nlink too, for subdirectories).
        if abs(time.time() - st.st_mtime) < _MTIME_SETTLED:
            return None
        return f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_nlink}"

    def _move_sync(
        self, source: str, dest: str, src_full: str, dest_full: str, sync: bool = True
    ) -> None:
        if not os.path.exists(src_full):
            raise PathNotFoundError(source)
        directory = os.path.dirname(dest_full)
        try:
            self._rename_into(src_full, dest_full, sync)
        except OSError as exc:
            raise StorageError(f"move {source} -> {dest} failed: {exc.strerror}") from None
        if sync:
            _fsync_dir(directory)

    async def move(self, source: str, dest: str) -> None:
        src_full, dest_full = self._full(source), self._full(dest)
        group = self._grouped()
        if group is None:
            await in_sync_thread(self._move_sync, source, dest, src_full, dest_full)
            return
        await group.run(lambda: self._move_sync(source, dest, src_full, dest_full, False))

    async def delete(self, path: str) -> None:
        full = self._full(path)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                # Move the tree out first so a reader never sees it half deleted.
                doomed = self._scratch_name()
                os.rename(full, doomed)
                await asyncio.to_thread(shutil.rmtree, doomed, True)
            else:
                os.unlink(full)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFoundError(path) from None

    async def touch(self, path: str) -> None:
        try:
            os.utime(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFoundError(path) from None
