"""The tags list is kept between requests while the tags directory is unchanged, and is
never stale: real filesystem storage, with directory mtimes set back to look settled."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hatchway.oci.digest import Digest
from hatchway.registry import layout
from hatchway.registry.tags import Tags
from hatchway.storage.filesystem import FilesystemDriver
from tests.support.aio import async_test

REPO = "team/app"
DIGEST = Digest.parse("sha256:" + "ab" * 32)


class CountingDriver(FilesystemDriver):
    """The real filesystem driver, counting directory listings."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.listings = 0

    async def list(self, path: str) -> list[str]:
        self.listings += 1
        return await super().list(path)


@pytest.fixture
def driver(tmp_path: Path) -> CountingDriver:
    return CountingDriver(str(tmp_path / "root"))


def settle(driver: FilesystemDriver) -> None:
    """Make the tags directory look untouched for a minute (as after the last push)."""
    past = time.time() - 60
    os.utime(driver.local_path(layout.tags(REPO)) or "", (past, past))


@async_test
async def test_an_unchanged_listing_is_not_read_again(driver: CountingDriver) -> None:
    tags = Tags(driver)
    for tag in ("b", "a", "c"):
        await tags.set(REPO, tag, DIGEST)
    settle(driver)
    assert await tags.all(REPO) == ["a", "b", "c"]
    listed = driver.listings
    for _ in range(5):
        assert await tags.all(REPO) == ["a", "b", "c"]
    assert driver.listings == listed


@async_test
async def test_a_recently_changed_directory_is_read_every_time(driver: CountingDriver) -> None:
    # Within the mtime's granularity a second change may leave it as it was.
    tags = Tags(driver)
    await tags.set(REPO, "a", DIGEST)
    await tags.all(REPO)
    listed = driver.listings
    await tags.all(REPO)
    assert driver.listings == listed + 1


@async_test
async def test_new_and_deleted_tags_show_at_once(driver: CountingDriver) -> None:
    tags = Tags(driver)
    await tags.set(REPO, "a", DIGEST)
    settle(driver)
    assert await tags.all(REPO) == ["a"]
    await tags.set(REPO, "b", DIGEST)
    assert await tags.all(REPO) == ["a", "b"]
    settle(driver)
    assert await tags.all(REPO) == ["a", "b"]
    await tags.delete(REPO, "a")
    assert await tags.all(REPO) == ["b"]
    settle(driver)
    assert await tags.all(REPO) == ["b"]


@async_test
async def test_a_half_made_tag_shows_once_its_link_lands(driver: CountingDriver) -> None:
    # A push makes tags/<tag>/current/ before it renames the link in; that rename does
    # not touch the tags directory, so the kept listing must look again for it.
    tags = Tags(driver)
    await tags.set(REPO, "a", DIGEST)
    half = driver.local_path(layout.tag_current(REPO, "b")) or ""
    os.makedirs(os.path.dirname(half))
    settle(driver)
    assert await tags.all(REPO) == ["a"]
    assert await tags.all(REPO) == ["a"]
    Path(half).write_text(str(DIGEST))
    assert await tags.all(REPO) == ["a", "b"]


@async_test
async def test_a_repository_without_tags_lists_none(driver: CountingDriver) -> None:
    assert await Tags(driver).all(REPO) == []
