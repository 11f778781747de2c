"""The conformance suite bound to the filesystem driver, plus what only it can do."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

import pytest

from hatchway.storage import filesystem, groupsync
from hatchway.storage.driver import InvalidPathError, PathNotFoundError, StorageDriver, StorageError
from hatchway.storage.filesystem import FilesystemDriver
from tests.storage.conformance import DriverConformance
from tests.support.aio import async_test


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
    async def test_stray_temp_files_are_not_listed(self, driver: FilesystemDriver) -> None:
        # What a crash between a temp file's creation and its rename leaves behind.
        await driver.put_content("/a/file", b"x")
        stray = Path(driver.root, "a", "file~tmp-0123456789abcdef")
        stray.write_bytes(b"partial")
        try:
            assert await driver.list("/a") == ["/a/file"]
        finally:
            stray.unlink()


class TestFilesystemDriverFsyncPerFile(DriverConformance):
    """The same suite without group commit (its default on the "/" filesystem, and
    where there is no syncfs(2)): each file and directory fsynced on its own."""

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
    """Counts the real sync calls (fsync, syncfs) made while a test runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real_fsync, real_syncfs = os.fsync, groupsync.syncfs
        assert real_syncfs is not None, "Linux has syncfs(2)"

        def fsync(fd: int) -> None:
            self.calls.append("fsync")
            real_fsync(fd)

        def syncfs(fd: int) -> None:
            self.calls.append("syncfs")
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


def test_group_commit_by_default_only_on_a_filesystem_of_its_own() -> None:
    # syncfs waits for all that is pending on the filesystem: on "/", the whole machine.
    assert not filesystem._own_filesystem("/")
    assert filesystem._own_filesystem("/proc")
