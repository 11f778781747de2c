"""``stage_content``: ``put_content`` in two steps (storage/driver.py).

A manifest push stages its tag link while the manifest itself is written, and publishes
it only once the manifest is durable: staged content must stay invisible until then,
publish must do what ``put_content`` does, and a discarded stage must leave nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hatchway.storage.driver import PathNotFoundError, StorageDriver, stage_content
from hatchway.storage.filesystem import FilesystemDriver
from hatchway.storage.memory import MemoryDriver
from tests.support.aio import async_test

PATH = "/docker/registry/v2/repositories/a/_manifests/tags/v1/current/link"


@pytest.fixture(params=["fsync", "groupcommit", "memory"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    if request.param == "memory":
        return MemoryDriver()
    return FilesystemDriver(str(tmp_path / "root"), group_commit=request.param == "groupcommit")


def scratch(driver: StorageDriver) -> list[str]:
    if not isinstance(driver, FilesystemDriver):
        return []
    return os.listdir(os.path.join(driver.root, "~tmp"))


@async_test
async def test_staged_content_appears_only_when_published(driver: StorageDriver) -> None:
    staged = await stage_content(driver, PATH, b"sha256:new")
    with pytest.raises(PathNotFoundError):
        await driver.get_content(PATH)
    with pytest.raises(PathNotFoundError):  # not even its directory
        await driver.stat("/docker/registry/v2/repositories/a")
    await staged.publish()
    assert await driver.get_content(PATH) == b"sha256:new"
    await staged.discard()  # after publish: nothing to drop
    assert await driver.get_content(PATH) == b"sha256:new"
    assert scratch(driver) == []


@async_test
async def test_a_published_stage_replaces_the_old_content(driver: StorageDriver) -> None:
    await driver.put_content(PATH, b"sha256:old")
    staged = await stage_content(driver, PATH, b"sha256:new")
    assert await driver.get_content(PATH) == b"sha256:old"
    await staged.publish()
    assert await driver.get_content(PATH) == b"sha256:new"


@async_test
async def test_a_discarded_stage_leaves_nothing(driver: StorageDriver) -> None:
    staged = await stage_content(driver, PATH, b"sha256:never")
    await staged.discard()
    await staged.publish()  # too late: discarded
    with pytest.raises(PathNotFoundError):
        await driver.get_content(PATH)
    assert scratch(driver) == []
