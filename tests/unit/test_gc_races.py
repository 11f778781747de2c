"""gc against pushes that land at its worst moments, interleaved deterministically.

The registry and gc share one real filesystem store; a hook in the driver runs a push
(or a whole gc) at the exact step where the two used to collide. Two ``Registry``
objects stand for two workers: the one that did not serve a push has nothing cached.
``tests/e2e/test_gc_race.py`` races real workers against a gc loop.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hatchway.errors import HatchwayError
from hatchway.oci.digest import Digest
from hatchway.registry import layout
from hatchway.registry.gc import collect
from hatchway.registry.service import Registry
from hatchway.storage.driver import PathNotFoundError
from hatchway.storage.filesystem import FilesystemDriver
from tests.support.aio import async_test
from tests.support.images import Image, make_image
from tests.support.oci import OCI_MANIFEST

REPO = "races/app"
Hook = Callable[[], Awaitable[None]]


class HookedDriver(FilesystemDriver):
    """The filesystem driver, running ``hooks[path]`` once when ``path`` is listed or written."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.hooks: dict[str, Hook] = {}

    async def _fire(self, path: str) -> None:
        hook = self.hooks.pop(path, None)
        if hook is not None:
            await hook()

    async def list(self, path: str) -> list[str]:
        await self._fire(path)
        return await super().list(path)

    async def put_content(self, path: str, data: bytes) -> None:
        await self._fire(path)
        await super().put_content(path, data)


def digest(d: str) -> Digest:
    return Digest.parse(d)


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def push(registry: Registry, image: Image, ref: str) -> None:
    for b in (image.config, *image.layers):
        session = await registry.uploads.start(REPO)
        await registry.uploads.finish(REPO, session.upload_id, digest(b.digest), body(b.data))
    await registry.manifests.put(REPO, ref, image.manifest.data, OCI_MANIFEST)


async def pulls_fully(registry: Registry, image: Image, ref: str) -> None:
    stored = await registry.manifests.get(REPO, ref)
    assert stored.body == image.manifest.data
    for b in (image.config, *image.layers):
        info = await registry.blobs.stat(REPO, digest(b.digest))
        assert info.size == b.size
        data = b"".join([chunk async for chunk in registry.blobs.read(digest(b.digest))])
        assert hashlib.sha256(data).hexdigest() == b.digest.split(":", 1)[1]


@pytest.fixture
def driver(tmp_path: Path) -> HookedDriver:
    return HookedDriver(str(tmp_path / "root"))


@async_test
async def test_blob_pushed_again_during_the_sweep_keeps_its_link(driver: HookedDriver) -> None:
    pusher, other = Registry(driver), Registry(driver)
    image = make_image("relinked", layer_sizes=(3000,))
    await push(pusher, image, "v1")
    await pusher.manifests.delete(REPO, image.manifest.digest)

    async def push_again() -> None:
        # gc has swept the image's blobs and is about to drop the links to them.
        assert not await pusher.blobs.exists(digest(image.layers[0].digest))
        await push(pusher, image, "v1")

    driver.hooks[layout.layers(REPO)] = push_again
    await collect(pusher, grace=0)
    assert layout.layers(REPO) not in driver.hooks, "the hook never ran"
    await pulls_fully(other, image, "v1")
    await pulls_fully(pusher, image, image.manifest.digest)


@async_test
async def test_manifest_pushed_again_during_gc_keeps_its_blob(driver: HookedDriver) -> None:
    pusher, other = Registry(driver), Registry(driver)
    image = make_image("repushed", layer_sizes=(3000,))
    await push(pusher, image, "v1")
    await pusher.manifests.delete(REPO, image.manifest.digest)

    async def push_again() -> None:
        # Mark is over (it saw no revision of the image); the sweep is next.
        await push(pusher, image, "v1")

    driver.hooks[layout.BLOBS] = push_again
    await collect(pusher, grace=0)
    assert layout.BLOBS not in driver.hooks, "the hook never ran"
    await pulls_fully(other, image, "v1")


@async_test
async def test_manifest_put_while_gc_runs_is_refused_or_kept(driver: HookedDriver) -> None:
    # A whole gc runs between the manifest PUT's checks and its revision link: the
    # blobs the PUT found were swept. The PUT must not be acknowledged then (nor 500).
    pusher, other = Registry(driver), Registry(driver)
    image = make_image("inflight", layer_sizes=(3000, 5000))
    for b in (image.config, *image.layers):
        session = await pusher.uploads.start(REPO)
        await pusher.uploads.finish(REPO, session.upload_id, digest(b.digest), body(b.data))
    revision = layout.revision_link(REPO, digest(image.manifest.digest))

    async def gc_now() -> None:
        report = await collect(pusher, grace=0)
        assert image.layers[0].digest in report.blobs_deleted

    driver.hooks[revision] = gc_now
    with pytest.raises(HatchwayError) as info:
        await pusher.manifests.put(REPO, "v1", image.manifest.data, OCI_MANIFEST)
    assert info.value.code.code == "MANIFEST_BLOB_UNKNOWN"
    assert revision not in driver.hooks, "the hook never ran"
    # The refused PUT leaves no revision link behind, and its tag (written ahead, to
    # be renamed into place last) neither: not in the repository, not in scratch.
    assert not await other.manifests.has_revision(REPO, digest(image.manifest.digest))
    with pytest.raises(PathNotFoundError):
        await driver.stat(layout.tag_current(REPO, "v1"))
    assert os.listdir(os.path.join(driver.root, "~tmp")) == []
    with pytest.raises(PathNotFoundError):
        await driver.stat(layout.revision_link(REPO, digest(image.manifest.digest)))
    # Pushed again in full, as a client does after that answer, it is whole.
    await push(pusher, image, "v1")
    await pulls_fully(other, image, "v1")
    await collect(pusher, grace=0)
    await pulls_fully(Registry(driver), image, "v1")
