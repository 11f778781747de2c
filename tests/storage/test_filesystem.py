"""The conformance suite bound to the filesystem driver, plus what only it can do."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchway.storage import filesystem, groupsync
from hatchway.storage.driver import (
    InvalidPathError,
    LockTimeoutError,
    PathNotFoundError,
    StorageDriver,
    StorageError,
)
from hatchway.storage.filesystem import FilesystemDriver, loose_permissions
from tests.storage.conformance import DriverConformance
from tests.support.aio import async_test


def modes(driver: FilesystemDriver, *, include_root: bool = True) -> tuple[set[int], set[int]]:
    """The permission bits of every directory and file under the driver's root."""
    dirs, files = set(), set()
    for directory, subdirs, names in os.walk(driver.root):
        if include_root or directory != driver.root:
            dirs.add(stat.S_IMODE(os.stat(directory).st_mode))
        files |= {stat.S_IMODE(os.stat(os.path.join(directory, n)).st_mode) for n in names}
        dirs |= {stat.S_IMODE(os.stat(os.path.join(directory, n)).st_mode) for n in subdirs}
    return dirs, files


async def write_everything(driver: FilesystemDriver) -> None:
    """Each way the driver creates files and directories."""
    await driver.put_content("/docker/registry/v2/repositories/a/link", b"sha256:x")
    writer = await driver.writer("/docker/registry/v2/uploads/u1/data")
    await writer.write(b"layer bytes")
    await writer.commit()
    await driver.move("/docker/registry/v2/uploads/u1/data", "/docker/registry/v2/blobs/b/data")


class TestFilesystemDriver(DriverConformance):
    """Bound with group commit (syncfs rounds) on; below, once more with fsync per file."""

    @pytest.fixture
    def driver(self, tmp_path: Path) -> FilesystemDriver:
        return FilesystemDriver(str(tmp_path / "root"), group_commit=True)

    def leftovers(self, driver: StorageDriver) -> list[str]:
        """Temp files of put_content or delete left on disk: the driver's scratch
        directory ("~tmp", a name no key can have) must be empty, and nothing else may
        carry a "~"."""
        assert isinstance(driver, FilesystemDriver)
        scratch = os.path.join(driver.root, "~tmp")
        found = [os.path.join(scratch, n) for n in os.listdir(scratch)]
        for directory, dirs, files in os.walk(driver.root):
            found += [
                os.path.join(directory, n)
                for n in dirs + files
                if "~" in n and os.path.join(directory, n) != scratch
            ]
        return found

    @async_test
    async def test_local_path_is_the_real_file(self, driver: FilesystemDriver) -> None:
        await driver.put_content("/a/b/file", b"on disk")
        local = driver.local_path("/a/b/file")
        assert local is not None
        assert local == os.path.join(driver.root, "a", "b", "file")
        assert Path(local).read_bytes() == b"on disk"
        with pytest.raises(InvalidPathError):
            driver.local_path("/a/../../etc/passwd")

    def test_root_is_created(self, tmp_path: Path) -> None:
        FilesystemDriver(str(tmp_path / "new" / "root"))
        assert (tmp_path / "new" / "root").is_dir()

    @async_test
    async def test_new_root_and_everything_under_it_is_private(self, tmp_path: Path) -> None:
        """Blobs, manifests and upload sessions are nobody else's business: 0700/0600."""
        root = tmp_path / "new" / "root"
        driver = FilesystemDriver(str(root))
        assert modes(driver) == ({0o700}, set())
        await write_everything(driver)
        assert modes(driver) == ({0o700}, {0o600})
        assert loose_permissions(str(root)) is None

    @async_test
    async def test_a_root_shared_with_its_group_stays_group_readable(self, tmp_path: Path) -> None:
        root = tmp_path / "shared-root"
        root.mkdir()
        root.chmod(0o750)
        driver = FilesystemDriver(str(root))
        await write_everything(driver)
        assert modes(driver) == ({0o750}, {0o640})
        assert loose_permissions(str(root)) is None

    @async_test
    async def test_a_loose_root_is_reported_and_nothing_new_is_world_readable(
        self, tmp_path: Path
    ) -> None:
        root = tmp_path / "loose-root"
        root.mkdir()
        root.chmod(0o755)
        warning = loose_permissions(str(root))
        assert warning is not None
        assert "has mode 0755" in warning
        assert "chmod 700" in warning
        driver = FilesystemDriver(str(root))
        await write_everything(driver)
        dirs, files = modes(driver, include_root=False)
        assert dirs == {0o750}
        assert files == {0o640}

    @async_test
    async def test_stray_temp_files_are_not_listed(self, driver: FilesystemDriver) -> None:
        # What a crash between a temp file's creation and its rename leaves behind.
        await driver.put_content("/a/file", b"x")
        stray = Path(driver.root, "a", "file~tmp-0123456789abcdef")
        stray.write_bytes(b"partial")
        try:
            assert await driver.list("/a") == ["/a/file"]
        finally:
            stray.unlink()


_HOLD_LOCK = """
import asyncio, sys
from hatchway.storage.filesystem import FilesystemDriver

async def main() -> None:
    async with FilesystemDriver(sys.argv[1]).lock(sys.argv[2], 10):
        print("locked", flush=True)
        sys.stdin.readline()

asyncio.run(main())
"""


@contextlib.contextmanager
def held_in_another_process(driver: FilesystemDriver, path: str) -> Iterator[subprocess.Popen[str]]:
    """A child process holding ``path``'s lock until it reads a line (or is killed)."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, driver.root, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "locked\n"
            yield child
        finally:
            child.kill()


@async_test
async def test_lock_excludes_another_process(tmp_path: Path) -> None:
    # What keeps two workers (or a worker and `hatchway gc`) apart.
    driver = FilesystemDriver(str(tmp_path / "root"))
    await driver.put_content("/session/data", b"x")
    with held_in_another_process(driver, "/session") as child:
        with pytest.raises(LockTimeoutError):
            async with driver.lock("/session", 0.1):
                pytest.fail("held by two processes at once")
        async with driver.lock("/session/data", 0):  # another path, another lock
            pass
        assert child.stdin is not None
        child.stdin.write("release\n")
        child.stdin.flush()
        async with driver.lock("/session", 10):
            assert child.wait(timeout=10) == 0


@async_test
async def test_lock_dies_with_its_process(tmp_path: Path) -> None:
    # A worker killed mid-request (kill -9) leaves no session locked forever.
    driver = FilesystemDriver(str(tmp_path / "root"))
    await driver.put_content("/session/data", b"x")
    with held_in_another_process(driver, "/session") as child:
        child.send_signal(signal.SIGKILL)
        child.wait()
        async with driver.lock("/session", 0):
            pass


class TestFilesystemDriverFsyncPerFile(DriverConformance):
    """The same suite without group commit (where there is no syncfs(2), with
    ``groupcommit: false``, and on "/" while syncs are slow): each file and directory
    fsynced on its own."""

    @pytest.fixture
    def driver(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FilesystemDriver:
        monkeypatch.setattr(filesystem, "syncfs", None)
        return FilesystemDriver(str(tmp_path / "root"), group_commit=True)

    def leftovers(self, driver: StorageDriver) -> list[str]:
        return TestFilesystemDriver.leftovers(TestFilesystemDriver(), driver)


def _settle(directory: str) -> None:
    past = time.time() - 60
    os.utime(directory, (past, past))


@async_test
async def test_list_version_trusts_only_a_settled_mtime(tmp_path: Path) -> None:
    # Two changes within the mtime's granularity can leave it as it was, so a directory
    # changed in the last seconds has no version; a settled one has, until it changes.
    driver = FilesystemDriver(str(tmp_path / "root"))
    await driver.put_content("/d/a", b"x")
    directory = driver.local_path("/d") or ""
    assert await driver.list_version("/d") is None
    _settle(directory)
    settled = await driver.list_version("/d")
    assert settled is not None
    assert await driver.list_version("/d") == settled
    await driver.put_content("/d/sub/b", b"x")
    assert await driver.list_version("/d") is None
    _settle(directory)
    assert await driver.list_version("/d") not in (None, settled)


# -- group commit (storage/groupsync.py) -------------------------------------------------


class SyncCalls:
    """Counts the real sync calls (fsync, syncfs) made while a test runs; each syncfs
    first sleeps ``delay`` seconds (a disk busy with other programs' writes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self.delay = 0.0
        real_fsync, real_syncfs = os.fsync, groupsync.syncfs
        assert real_syncfs is not None, "Linux has syncfs(2)"

        def fsync(fd: int) -> None:
            self.calls.append("fsync")
            real_fsync(fd)

        def syncfs(fd: int) -> None:
            self.calls.append("syncfs")
            time.sleep(self.delay)
            real_syncfs(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(groupsync, "syncfs", syncfs)


@async_test
async def test_concurrent_writes_share_their_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Alone, each file takes a sync of its content and one of its directory (and one
    # per new directory); 32 at once are made durable by a few rounds together.
    driver = FilesystemDriver(str(tmp_path / "root"), group_commit=True)
    syncs = SyncCalls(monkeypatch)
    await asyncio.gather(*(driver.put_content(f"/g/{i}/link", b"%d" % i) for i in range(32)))
    for i in range(32):
        assert await driver.get_content(f"/g/{i}/link") == b"%d" % i
    assert len(syncs.calls) < 16, syncs.calls


@async_test
async def test_content_is_durable_before_it_is_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FilesystemDriver(str(tmp_path / "root"), group_commit=True)
    dest = driver.local_path("/o/link") or ""
    visible_at_sync: list[bool] = []
    real = groupsync.syncfs
    assert real is not None

    def syncfs(fd: int) -> None:
        visible_at_sync.append(os.path.exists(dest))
        real(fd)

    monkeypatch.setattr(groupsync, "syncfs", syncfs)
    await driver.put_content("/o/link", b"data")
    # A sync of the written content before the rename shows it, one after it.
    assert visible_at_sync == [False, True]
    assert await driver.get_content("/o/link") == b"data"


@async_test
async def test_a_failed_sync_fails_the_write_and_shows_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = FilesystemDriver(str(tmp_path / "root"), group_commit=True)
    await driver.put_content("/f/old", b"old")

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(groupsync, "syncfs", failing)
    with pytest.raises(StorageError, match="sync failed"):
        await driver.put_content("/f/new", b"new")
    with pytest.raises(StorageError, match="sync failed"):
        await driver.put_content("/f/old", b"replaced")
    monkeypatch.undo()
    with pytest.raises(PathNotFoundError):
        await driver.get_content("/f/new")
    assert await driver.get_content("/f/old") == b"old"
    assert os.listdir(os.path.join(driver.root, "~tmp")) == []


@async_test
async def test_a_cancelled_writer_leaves_the_others_alone(tmp_path: Path) -> None:
    driver = FilesystemDriver(str(tmp_path / "root"), group_commit=True)
    tasks = [asyncio.ensure_future(driver.put_content(f"/c/{i}", b"x")) for i in range(8)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 3] == [None] * 7
    for i in range(8):  # the cancelled one was handed in already: it completes anyway
        if i != 3:
            assert await driver.get_content(f"/c/{i}") == b"x"
    await driver.put_content("/c/after", b"y")  # and the group still works
    assert os.listdir(os.path.join(driver.root, "~tmp")) == []


def test_only_slash_is_not_a_filesystem_of_its_own() -> None:
    # syncfs waits for all that is pending on the filesystem: on "/", the whole machine.
    assert not filesystem._own_filesystem("/")
    assert filesystem._own_filesystem("/proc")


@async_test
async def test_by_default_on_slash_slow_rounds_give_way_to_fsyncs_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On "/" (``auto``) concurrent writes share rounds while syncfs is quick; once other
    programs' writes make rounds slow (here: a syncfs that takes 40 ms), writes fsync
    file by file until the cool-down ends, then try rounds again."""
    assert not filesystem._own_filesystem(str(tmp_path))  # the tests' tmp is on "/"
    driver = FilesystemDriver(str(tmp_path / "root"))  # groupcommit: auto
    syncs = SyncCalls(monkeypatch)
    # Quick enough whatever this machine's disk is doing now (a busy CI machine's
    # rounds could be slow for real).
    monkeypatch.setattr(groupsync, "SLOW_ROUND", 3600.0)
    await asyncio.gather(*(driver.put_content(f"/q/{i}/link", b"q") for i in range(32)))
    assert "syncfs" in syncs.calls
    assert len(syncs.calls) < 16, syncs.calls  # rounds shared by the 32
    syncs.delay = 0.04
    monkeypatch.setattr(groupsync, "COOL_DOWN", 1.0)
    monkeypatch.setattr(groupsync, "SLOW_ROUND", 0.020)
    await driver.put_content("/s/first", b"s")  # its rounds are slow
    syncs.calls.clear()
    await asyncio.gather(*(driver.put_content(f"/s/{i}/link", b"s") for i in range(8)))
    assert "syncfs" not in syncs.calls
    assert syncs.calls.count("fsync") >= 16  # each file and its directory
    for i in range(8):
        assert await driver.get_content(f"/s/{i}/link") == b"s"
    syncs.delay = 0.0  # the disk is quiet again
    await asyncio.sleep(1.1)
    syncs.calls.clear()
    await driver.put_content("/s/later", b"s")  # the cool-down is over: rounds again
    assert "syncfs" in syncs.calls


@async_test
async def test_a_volume_of_its_own_keeps_its_rounds_however_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filesystem, "_own_filesystem", lambda _: True)
    driver = FilesystemDriver(str(tmp_path / "root"))
    syncs = SyncCalls(monkeypatch)
    syncs.delay = 0.04
    for i in range(3):
        await driver.put_content(f"/v/{i}", b"v")
    assert "fsync" not in syncs.calls
