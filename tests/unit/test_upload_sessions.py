"""Upload sessions in the service layer, on both drivers: one request at a time, no leaks."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
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
