"""The conformance suite bound to the S3 driver against a real S3 server (SeaweedFS on
loopback, one bucket per test), plus what only it does: multipart streaming in bounded
memory, appends copied server-side, aborting abandoned uploads, cross-process locks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hatchway.storage.driver import LockTimeoutError, StorageDriver
from hatchway.storage.locks import FileLocks
from hatchway.storage.s3 import S3Driver, S3Options
from hatchway.storage.s3parts import MIN_PART, MiB
from tests.storage.conformance import DriverConformance, read_all
from tests.support import seaweedfs
from tests.support.aio import async_test


def make_driver(tmp_path: Path, bucket: str | None = None, **extra: object) -> S3Driver:
    weed = seaweedfs.server()
    options = weed.options(bucket or weed.new_bucket(), **extra)
    return S3Driver(S3Options(**options), FileLocks(str(tmp_path / "locks"), options["bucket"]))


class TestS3Driver(DriverConformance):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> S3Driver:
        return make_driver(tmp_path)

    def leftovers(self, driver: StorageDriver) -> list[str]:
        """Multipart uploads left open, and lock files left in the local directory."""
        assert isinstance(driver, S3Driver)
        admin = seaweedfs.server().admin()
        uploads = admin.list_multipart_uploads(Bucket=driver.bucket).get("Uploads", [])
        locks = os.listdir(driver._locks.directory)  # type: ignore[attr-defined]
        return [u["Key"] for u in uploads] + locks


@async_test
async def test_keys_follow_distributions_layout(tmp_path: Path) -> None:
    weed = seaweedfs.server()
    bucket = weed.new_bucket()
    driver = make_driver(tmp_path, bucket, rootdirectory="/registry/")
    await driver.put_content("/docker/registry/v2/repositories/a/_layers/link", b"x")
    keys = [o["Key"] for o in weed.admin().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["registry/docker/registry/v2/repositories/a/_layers/link"]
    plain = make_driver(tmp_path, bucket)
    assert await plain.list("/") == ["/registry"]


@async_test
async def test_large_write_streams_in_parts_with_bounded_memory(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, chunksize=5 * MiB)
    w = await driver.writer("/big/data")
    block = os.urandom(256 * 1024)
    peak = 0
    for _ in range(96):  # 24 MiB: five parts
        await w.write(block)
        peak = max(peak, w.in_memory)
    assert peak <= 5 * MiB
    await w.commit()
    assert (await driver.stat("/big/data")).size == 96 * len(block)
    assert await read_all(driver, "/big/data", 24 * MiB - 3) == block[-3:]


@async_test
async def test_append_to_a_large_object_copies_it_server_side(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    first = os.urandom(MIN_PART + 1234)
    await driver.put_content("/a/data", first)
    w = await driver.writer("/a/data", append=True)
    assert w.size == len(first)
    assert w.in_memory == 0  # not read back
    await w.write(b"tail")
    await w.close()
    assert await driver.get_content("/a/data") == first + b"tail"


@async_test
async def test_failed_storage_keeps_the_old_object(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, chunksize=5 * MiB)
    await driver.put_content("/f/data", b"before")
    w = await driver.writer("/f/data", append=True)
    await w.write(os.urandom(MIN_PART))
    w._failed = True  # as after a part upload that failed
    await w.close()
    assert await driver.get_content("/f/data") == b"before"
    uploads = seaweedfs.server().admin().list_multipart_uploads(Bucket=driver.bucket)
    assert uploads.get("Uploads", []) == []


@async_test
async def test_abandoned_multipart_uploads_are_aborted(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, chunksize=5 * MiB)
    await driver.put_content("/u/session/startedat", b"x")
    w = await driver.writer("/u/session/data")
    await w.write(os.urandom(6 * MiB))  # a part is sent: the upload is open
    await w._settle()
    admin = seaweedfs.server().admin()
    assert len(admin.list_multipart_uploads(Bucket=driver.bucket).get("Uploads", [])) == 1
    assert await driver.abort_incomplete("/u", before=time.time() - 3600) == []
    assert await driver.abort_incomplete("/u", before=time.time() + 1) == ["/u/session/data"]
    assert admin.list_multipart_uploads(Bucket=driver.bucket).get("Uploads", []) == []
    w._upload_id = None  # already aborted
    await driver.delete("/u")


_HOLDER = """
import asyncio, sys
from hatchway.storage.locks import FileLocks
async def main():
    async with FileLocks(sys.argv[1], "ns").hold("/k", 5):
        print("held", flush=True)
        sys.stdin.readline()
asyncio.run(main())
"""


@async_test
async def test_file_locks_exclude_other_processes(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert holder.stdout.readline() == b"held\n"
    locks = FileLocks(str(tmp_path), "ns")
    with pytest.raises(LockTimeoutError):
        async with locks.hold("/k", 0.2):
            pytest.fail("held by two processes")
    async with FileLocks(str(tmp_path), "other-bucket").hold("/k", 0):
        pass  # another namespace is another lock
    holder.stdin.write(b"\n")
    holder.stdin.close()
    assert await asyncio.to_thread(holder.wait) == 0
    holder.stdout.close()
    async with locks.hold("/k", 1):
        pass
    assert os.listdir(tmp_path) == []


def test_presigned_urls_name_the_public_endpoint(tmp_path: Path) -> None:
    options = S3Options(
        bucket="registry",
        regionendpoint="http://10.0.0.5:8333",
        publicendpoint="https://objects.example.com",
        accesskey="AKIAEXAMPLE",
        secretkey="not-a-real-secret",
        forcepathstyle=True,
        rootdirectory="/reg",
    )
    driver = S3Driver(options, FileLocks(str(tmp_path / "locks"), "ns"))
    url = driver.presigned_url("/docker/registry/v2/blobs/sha256/ab/ab12/data", 600)
    assert url.startswith("https://objects.example.com/registry/reg/docker/registry/v2/blobs/")
    assert "X-Amz-Expires=600" in url
    assert "not-a-real-secret" not in url
    plain = S3Driver(replace(options, publicendpoint=None, rootdirectory=""), driver._locks)
    assert plain.presigned_url("/x", 60).startswith("http://10.0.0.5:8333/registry/x?")
