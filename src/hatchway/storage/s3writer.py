"""The S3 driver's FileWriter: a stream into one multipart upload, published on close.

Nothing written is visible until :meth:`S3Writer.close` or :meth:`S3Writer.commit`
completes the upload (or, for less than one part, puts the object in one request), and
completing replaces the object atomically, as a rename does on a filesystem. Data is
held in memory only as the part being filled plus the parts in flight (two).

Appending to an object copies it into the new upload server-side (UploadPartCopy, no
bytes through this process) when it is at least one part (5 MiB), else reads it back
(less than 5 MiB) as the start of the first part. If storage fails mid-way, the upload
is aborted and the object stays as it was before this writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hatchway.storage.driver import StorageError
from hatchway.storage.s3parts import copy_ranges, part_size

# Parts sent at once while the next fills: memory is chunksize x (IN_FLIGHT + 1).
IN_FLIGHT = 2

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef


class S3Writer:
    def __init__(
        self,
        client: Callable[[], Awaitable[S3Client]],
        bucket: str,
        key: str,
        path: str,
        *,
        chunksize: int,
        copychunk: int,
        put_args: dict[str, Any],
        base: int = 0,
        head: bytes = b"",
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._path = path
        self._chunksize = chunksize
        self._copychunk = copychunk
        self._put_args = put_args
        self._base = base  # bytes of the existing object to copy server-side
        self._buffer = bytearray(head)  # or, under one part, read back into memory
        self._size = base + len(head)
        self._dirty = base == 0 and not head  # a new (truncated) file is written even empty
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._ranges = copy_ranges(base, copychunk) if base else []
        self._next = len(self._ranges) + 1
        self._in_flight: list[asyncio.Task[None]] = []
        self._failed = False
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def _metadata(self) -> dict[str, Any]:
        return {**self._put_args, "Metadata": {"mtime": repr(time.time())}}

    async def _start(self) -> str:
        if self._upload_id is None:
            client = await self._client()
            created = await client.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, **self._metadata()
            )
            self._upload_id = created["UploadId"]
            if self._base:
                await self._copy_base(client, self._upload_id)
        return self._upload_id

    async def _copy_base(self, client: S3Client, upload_id: str) -> None:
        async def copy(number: int, first: int, last: int) -> CompletedPartTypeDef:
            result = await client.upload_part_copy(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self._bucket, "Key": self._key},
                CopySourceRange=f"bytes={first}-{last}",
            )
            return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

        self._parts += await asyncio.gather(
            *(copy(n, first, last) for n, (first, last) in enumerate(self._ranges, start=1))
        )

    async def _send(self, number: int, data: bytes) -> None:
        upload_id = await self._start()
        client = await self._client()
        result = await client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=upload_id, PartNumber=number, Body=data
        )
        self._parts.append({"PartNumber": number, "ETag": result["ETag"]})

    async def _settle(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` parts are in flight; a failure fails the writer."""
        while len(self._in_flight) > keep:
            task = self._in_flight.pop(0)
            try:
                await task
            except Exception as exc:
                self._failed = True
                raise StorageError(f"cannot write {self._path}: {exc}") from exc

    async def write(self, data: bytes | memoryview) -> None:
        if self._closed or self._failed:
            raise StorageError(f"write to a closed writer ({self._path})")
        if not data:
            return
        self._dirty = True
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= (want := part_size(self._next, self._chunksize)):
            part = bytes(self._buffer[:want])
            del self._buffer[:want]
            await self._settle(IN_FLIGHT - 1)
            number, self._next = self._next, self._next + 1
            if self._upload_id is None:
                await self._start()  # before the first part, not raced by the second
            self._in_flight.append(asyncio.ensure_future(self._send(number, part)))

    async def _publish(self) -> None:
        await self._settle()
        client = await self._client()
        if self._upload_id is None and not self._base:
            # Less than one part in all: one PutObject.
            await client.put_object(
                Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer), **self._metadata()
            )
            return
        if self._buffer or self._upload_id is None:
            await self._send(self._next, bytes(self._buffer))
        assert self._upload_id is not None
        parts = sorted(self._parts, key=lambda p: p["PartNumber"])
        await client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._upload_id = None

    async def _abort(self) -> None:
        tasks, self._in_flight = self._in_flight, []
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            client = await self._client()
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=upload_id
                )

    async def commit(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._failed:
            await self._abort()
            return
        if not self._dirty:
            return
        try:
            await self._publish()
        except BaseException as exc:
            await self._abort()
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise StorageError(f"cannot write {self._path}: {exc}") from exc
            raise
        finally:
            self._buffer = bytearray()

    async def discard(self) -> None:
        """Close, dropping what this writer sent; the object stays as it was before."""
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        await self._abort()

    async def cancel(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buffer = bytearray()
        await self._abort()
        client = await self._client()
        await client.delete_object(Bucket=self._bucket, Key=self._key)

    @property
    def in_memory(self) -> int:
        """Bytes this writer holds (for tests of bounded memory)."""
        return len(self._buffer)
