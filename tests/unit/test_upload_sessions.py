"""Upload sessions in the service layer, on both drivers: one request at a time, no leaks."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hatchway.errors import HatchwayError
from hatchway.oci.digest import Digest
from hatchway.registry.blobs import BlobStore
from hatchway.registry.service import Registry
from hatchway.registry.uploads import Uploads
from hatchway.storage.driver import StorageDriver
from hatchway.storage.filesystem import FilesystemDriver
from hatchway.storage.memory import MemoryDriver
from tests.support.aio import async_test

REPO = "sessions/app"
DriverFactory = Callable[[Path], StorageDriver]
DRIVERS: dict[str, DriverFactory] = {
    "filesystem": lambda tmp: FilesystemDriver(str(tmp / "root")),
    "inmemory": lambda tmp: MemoryDriver(),
}


def digest_of(data: bytes) -> Digest:
    return Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def live_objects() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


@pytest.mark.parametrize("driver_name", DRIVERS)
@async_test
async def test_unknown_upload_ids_leave_no_state_behind(driver_name: str, tmp_path: Path) -> None:
    # Anyone with push access can send requests for random, well-formed upload ids.
    registry = Registry(DRIVERS[driver_name](tmp_path))
    uploads = registry.uploads
    requests = 1500
    before = live_objects()
    for _ in range(requests):
        upload_id = str(uuid.uuid4())
        calls = (
            uploads.append(REPO, upload_id, body(b"x")),
            uploads.finish(REPO, upload_id, digest_of(b"x")),
            uploads.cancel(REPO, upload_id),
        )
        for call in calls:
            with pytest.raises(HatchwayError) as info:
                await call
            assert info.value.code.code == "BLOB_UPLOAD_UNKNOWN"
    grown = {kind: n - before[kind] for kind, n in live_objects().items() if n - before[kind] > 100}
    assert grown == {}


@pytest.mark.parametrize("driver_name", DRIVERS)
@async_test
async def test_a_session_takes_one_request_at_a_time(driver_name: str, tmp_path: Path) -> None:
    driver = DRIVERS[driver_name](tmp_path)
    uploads = Uploads(driver, BlobStore(driver), session_wait=0.2)
    data, extra = os.urandom(70_000), b"held back" * 100
    session = await uploads.start(REPO)
    await uploads.append(REPO, session.upload_id, body(data))

    release = asyncio.Event()
    started = asyncio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        started.set()
        await release.wait()
        yield extra

    patch = asyncio.create_task(uploads.append(REPO, session.upload_id, held_body()))
    await started.wait()
    for attempt in (
        uploads.finish(REPO, session.upload_id, digest_of(data)),
        uploads.append(REPO, session.upload_id, body(b"more")),
        uploads.cancel(REPO, session.upload_id),
    ):
        with pytest.raises(HatchwayError) as info:
            await attempt
        assert (info.value.status, info.value.code.code) == (416, "BLOB_UPLOAD_INVALID")
    release.set()
    assert (await patch).size == len(data) + len(extra)
    with pytest.raises(HatchwayError) as info:
        await uploads.finish(REPO, session.upload_id, digest_of(data))
    assert info.value.code.code == "DIGEST_INVALID"
    await uploads.finish(REPO, session.upload_id, digest_of(data + extra))
    stored = b"".join([c async for c in BlobStore(driver).read(digest_of(data + extra))])
    assert stored == data + extra
    if isinstance(driver, MemoryDriver):
        assert driver.locks_in_use == 0


class _Died(BaseException):
    """Stands for kill -9: nothing after it runs in the process that raised it."""


async def _die_at_the_link(driver: StorageDriver, finish: Awaitable[int]) -> None:
    """Run ``finish`` in a process that dies as it links the blob into the repository."""
    real_put = driver.put_content

    async def put_content(path: str, data: bytes) -> None:
        if "/_layers/" in path:
            raise _Died
        await real_put(path, data)

    driver.put_content = put_content  # type: ignore[method-assign]
    try:
        with pytest.raises(_Died):
            await finish
    finally:
        driver.put_content = real_put  # type: ignore[method-assign]


@pytest.mark.parametrize("driver_name", DRIVERS)
@async_test
async def test_a_put_sent_again_after_its_process_died_mid_put_finishes(
    driver_name: str, tmp_path: Path
) -> None:
    """A replica killed after moving the session's data into the store and before
    linking the blob: nginx sends the PUT (idempotent) to the other replica, which used
    to answer BLOB_UPLOAD_UNKNOWN (the data was gone) and leave the blob unlinked."""
    driver = DRIVERS[driver_name](tmp_path)
    data = os.urandom(50_000)
    dying = Uploads(driver, BlobStore(driver))
    session = await dying.start(REPO)
    await dying.append(REPO, session.upload_id, body(data))
    await _die_at_the_link(driver, dying.finish(REPO, session.upload_id, digest_of(data)))

    other = Registry(driver)  # another replica: nothing of the first in memory
    assert not await other.blobs.is_linked(REPO, digest_of(data))
    assert await other.uploads.finish(REPO, session.upload_id, digest_of(data)) == len(data)
    assert await other.blobs.is_linked(REPO, digest_of(data))
    stored = b"".join([c async for c in other.blobs.read(digest_of(data))])
    assert stored == data
    with pytest.raises(HatchwayError) as info:  # the session is gone now
        await other.uploads.status(REPO, session.upload_id)
    assert info.value.code.code == "BLOB_UPLOAD_UNKNOWN"


@pytest.mark.parametrize("driver_name", DRIVERS)
@async_test
async def test_a_dead_put_does_not_let_another_digest_be_linked(
    driver_name: str, tmp_path: Path
) -> None:
    """The leftover session links only the digest its data was verified as: never a
    blob of another repository named in a later PUT."""
    driver = DRIVERS[driver_name](tmp_path)
    registry = Registry(driver)
    secret = os.urandom(1000)
    other = await registry.uploads.start("private/app")
    await registry.uploads.append("private/app", other.upload_id, body(secret))
    await registry.uploads.finish("private/app", other.upload_id, digest_of(secret))

    data = os.urandom(2000)
    session = await registry.uploads.start(REPO)
    await registry.uploads.append(REPO, session.upload_id, body(data))
    await _die_at_the_link(
        driver, registry.uploads.finish(REPO, session.upload_id, digest_of(data))
    )
    with pytest.raises(HatchwayError) as info:
        await Registry(driver).uploads.finish(REPO, session.upload_id, digest_of(secret))
    assert info.value.code.code == "BLOB_UPLOAD_UNKNOWN"
    assert not await registry.blobs.is_linked(REPO, digest_of(secret))
