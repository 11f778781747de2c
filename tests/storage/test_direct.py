"""Streamed blob data written around the page cache (storage/direct.py).

The filesystem writer's ``write_blocking`` (what the upload sink calls) stages batches in
aligned buffers and writes them with ``O_DIRECT`` (``storage.filesystem.directio``, on
by default), or through the page cache. Either way, on the test's disk and on tmpfs, the
file must hold exactly the bytes appended, in order, whatever the batch sizes and
wherever the upload resumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchway.storage.direct import ALIGN, BIG_STAGE, GROW_AFTER, STAGE, open_direct
from hatchway.storage.filesystem import FilesystemDriver
from hatchway.storage.fswriter import FilesystemWriter
from tests.support.aio import async_test

DATA = "/docker/registry/v2/repositories/a/_uploads/u1/data"
SHM = Path("/dev/shm")  # tmpfs: no O_DIRECT, so the page-cache path


def pattern(size: int, seed: int = 0) -> bytes:
    """Bytes that differ at every offset, so a misplaced buffer shows."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def batches(data: bytes, sizes: list[int]) -> Iterator[list[bytes]]:
    """``data`` cut into batches of parts of the given sizes (cycled)."""
    pos, i = 0, 0
    while pos < len(data):
        batch = []
        for _ in range(3):
            n = sizes[i % len(sizes)]
            i += 1
            batch.append(data[pos : pos + n])
            pos += n
            if pos >= len(data):
                break
        yield [p for p in batch if p]


@pytest.fixture(params=["disk", "tmpfs"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    if request.param == "disk":
        yield tmp_path / "root"
        return
    if not SHM.is_dir():
        pytest.skip("no /dev/shm")
    base = SHM / f"hatchway-test-{os.getpid()}-{tmp_path.name}"
    yield base
    for directory, dirs, files in os.walk(base, topdown=False):
        for name in files:
            os.unlink(os.path.join(directory, name))
        for name in dirs:
            os.rmdir(os.path.join(directory, name))
    if base.exists():
        base.rmdir()


@pytest.fixture(params=[True, False], ids=["directio", "pagecache"])
def driver(request: pytest.FixtureRequest, root: Path) -> FilesystemDriver:
    """``storage.filesystem.directio`` on (the default) and off."""
    return FilesystemDriver(str(root), direct_io=request.param)


async def stream(writer: FilesystemWriter, data: bytes, sizes: list[int]) -> None:
    for batch in batches(data, sizes):
        await asyncio.to_thread(writer.write_blocking, batch)


def stored(driver: FilesystemDriver, path: str) -> bytes:
    return Path(driver.root + path).read_bytes()


def test_the_tests_disk_takes_direct_io(tmp_path: Path) -> None:
    """So the direct path below is exercised here, not only the fallback."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    direct = open_direct(str(probe))
    assert direct is not None
    fd = os.open(probe, os.O_WRONLY)
    try:
        assert direct.append(fd, [pattern(STAGE + 1)], 0) == STAGE + 1
        direct.detach(fd, STAGE + 1)
    finally:
        os.close(fd)
    assert probe.read_bytes() == pattern(STAGE + 1)


@async_test
async def test_a_streamed_blob_is_stored_byte_for_byte(driver: FilesystemDriver) -> None:
    data = pattern(5 * STAGE + 12345)
    writer = await driver.writer(DATA)
    # Odd part sizes: buffers fill and spill across parts and batches.
    await stream(writer, data, [1, ALIGN - 1, STAGE + 3, 65536, 300_001, 2 * STAGE])
    assert writer.size == len(data)
    await writer.commit()
    assert stored(driver, DATA) == data
    assert (await driver.stat(DATA)).size == len(data)


@async_test
async def test_a_big_blob_goes_on_in_big_buffers_byte_for_byte(driver: FilesystemDriver) -> None:
    """Past GROW_AFTER the buffers are traded for big ones, one while the other is
    still being written: nothing lost, doubled or misplaced at the switch."""
    data = pattern(GROW_AFTER + 2 * BIG_STAGE + 4321, seed=7)
    writer = await driver.writer(DATA)
    await stream(writer, data, [STAGE - 5, 3 * STAGE + 1, 4096, BIG_STAGE + 17])
    await writer.commit()
    assert stored(driver, DATA) == data


@async_test
async def test_an_upload_resumed_at_an_odd_offset_continues_byte_for_byte(
    driver: FilesystemDriver,
) -> None:
    data = pattern(3 * STAGE + 777, seed=1)
    first = await driver.writer(DATA)
    await stream(first, data[:12345], [1000])
    await first.close()  # the client went away; the next request appends
    second = await driver.writer(DATA, append=True)
    assert second.size == 12345
    await stream(second, data[12345 : 2 * STAGE], [STAGE // 3])
    await second.close()
    third = await driver.writer(DATA, append=True)
    await stream(third, data[2 * STAGE :], [STAGE])
    await third.commit()
    assert stored(driver, DATA) == data


@async_test
async def test_writes_of_both_kinds_keep_their_order(driver: FilesystemDriver) -> None:
    a, b, c = pattern(STAGE + 5, 2), pattern(70_000, 3), pattern(2 * STAGE, 4)
    writer = await driver.writer(DATA)
    await stream(writer, a, [STAGE // 2])
    await writer.write(b)  # the async path, through the page cache
    await stream(writer, c, [STAGE])
    await writer.commit()
    assert stored(driver, DATA) == a + b + c


@async_test
async def test_a_cancelled_streamed_upload_leaves_nothing(driver: FilesystemDriver) -> None:
    writer = await driver.writer(DATA)
    await stream(writer, pattern(2 * STAGE + 1), [STAGE])
    await writer.cancel()
    assert not Path(driver.root + DATA).exists()


@async_test
async def test_many_uploads_at_once_keep_their_own_bytes(driver: FilesystemDriver) -> None:
    """Staging buffers are pooled per process: concurrent writers never share one."""
    blobs = {f"/docker/registry/v2/u/{i}/data": pattern(2 * STAGE + i * 999, i) for i in range(6)}

    async def one(path: str, data: bytes) -> None:
        writer = await driver.writer(path)
        await stream(writer, data, [STAGE // 2 + 1])
        await writer.commit()

    await asyncio.gather(*(one(p, d) for p, d in blobs.items()))
    for path, data in blobs.items():
        assert stored(driver, path) == data
