"""The conformance suite bound to the filesystem driver, plus what only it can do."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hatchway.storage.driver import InvalidPathError, StorageDriver
from hatchway.storage.filesystem import FilesystemDriver
from tests.storage.conformance import DriverConformance
from tests.support.aio import async_test


class TestFilesystemDriver(DriverConformance):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> FilesystemDriver:
        return FilesystemDriver(str(tmp_path / "root"))

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
