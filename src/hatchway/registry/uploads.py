"""Blob upload sessions, kept in storage so any worker or replica can continue one.

Data is hashed as it streams into the session's ``data`` file, so finishing an upload
never reads the bytes again. The running hash lives in this process only; a session
continued elsewhere (another worker, or after a restart) resumes from the hash state
saved after each request, or re-reads its data once.

A session takes one request at a time: PATCH, PUT and DELETE hold the storage lock on
the session's directory, which excludes every worker (and gc), and open the data file
only while they hold it. So when PUT hashes, syncs and publishes the data, no writer
anywhere can still append to it. A request that finds the session busy waits a little,
then gets 416 BLOB_UPLOAD_INVALID, after which a client asks for the status and resumes.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from hatchway.errors import (
    BLOB_UPLOAD_INVALID,
    BLOB_UPLOAD_UNKNOWN,
    DIGEST_INVALID,
    RANGE_INVALID,
    SIZE_INVALID,
    HatchwayError,
)
from hatchway.oci.digest import Digest, Hasher, new_hasher
from hatchway.oci.hashstate import ResumableSha256
from hatchway.oci.hashstate import available as hashstate_available
from hatchway.registry import layout
from hatchway.registry.blobs import BlobStore, StagedWriter
from hatchway.registry.sink import SinkError, stream_into
from hatchway.storage.driver import (
    FileWriter,
    LockTimeoutError,
    PathNotFoundError,
    StorageDriver,
)

_UPLOAD_ID_RE = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")
_HASH_CACHE_SIZE = 1024
# How long a request waits for a session another request holds: long enough for a
# client's retry to outlast the end of its own dropped request, short enough that a
# request held open elsewhere is answered.
SESSION_WAIT = 5.0


def _session_hasher() -> Hasher:
    return ResumableSha256() if hashstate_available() else new_hasher()


@dataclass(frozen=True, slots=True)
class UploadStatus:
    upload_id: str
    size: int


class Uploads:
    def __init__(
        self, driver: StorageDriver, blobs: BlobStore, session_wait: float = SESSION_WAIT
    ) -> None:
        self._driver = driver
        self._blobs = blobs
        self._session_wait = session_wait
        # upload id -> (bytes hashed, running sha256); valid only while sizes agree.
        self._hashes: OrderedDict[str, tuple[int, Hasher]] = OrderedDict()

    @staticmethod
    def _check_id(upload_id: str) -> str:
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            raise HatchwayError(BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id[:100]})
        return upload_id

    @contextlib.asynccontextmanager
    async def _session(self, name: str, upload_id: str) -> AsyncIterator[None]:
        """Hold the session against every other request, in any worker."""
        try:
            async with self._driver.lock(layout.upload_dir(name, upload_id), self._session_wait):
                yield
        except PathNotFoundError as exc:
            if exc.path != layout.upload_dir(name, upload_id):
                raise
            raise HatchwayError(BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id}) from None
        except LockTimeoutError as exc:
            if exc.path != layout.upload_dir(name, upload_id):
                raise
            raise HatchwayError(
                RANGE_INVALID, "upload is in use by another request", {"uuid": upload_id}
            ) from None

    async def _save_state(
        self, name: str, upload_id: str, before: int, after: int, hasher: Hasher
    ) -> None:
        if not isinstance(hasher, ResumableSha256) or before == after:
            return
        await self._put_volatile(layout.upload_hashstate(name, upload_id, after), hasher.state())
        with contextlib.suppress(PathNotFoundError):
            await self._driver.delete(layout.upload_hashstate(name, upload_id, before))

    async def _put_volatile(self, path: str, data: bytes) -> None:
        """A session's bookkeeping (start time, hash state), written without syncs.

        Worth nothing without the session's data, which is not durable before the
        upload's last request either (its PUT syncs it). After a power cut a stale or
        empty file reads as absent: the start time falls back to the directory's mtime,
        a hash state that does not load is replaced by hashing the data again, and the
        digest check at PUT stands behind both. Each was two sync waits per PATCH."""
        writer = await self._driver.writer(path)
        try:
            await writer.write(data)
        finally:
            await writer.close()

    async def start(self, name: str) -> UploadStatus:
        upload_id = str(uuid.uuid4())
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        await self._put_volatile(layout.upload_started(name, upload_id), started.encode())
        writer = await self._driver.writer(layout.upload_data(name, upload_id))
        await writer.close()
        self._hashes[upload_id] = (0, _session_hasher())
        return UploadStatus(upload_id, 0)

    async def status(self, name: str, upload_id: str) -> UploadStatus:
        self._check_id(upload_id)
        try:
            info = await self._driver.stat(layout.upload_data(name, upload_id))
        except PathNotFoundError:
            raise HatchwayError(BLOB_UPLOAD_UNKNOWN, detail={"uuid": upload_id}) from None
        return UploadStatus(upload_id, info.size)

    async def _hasher_at(self, name: str, upload_id: str, size: int) -> Hasher:
        cached = self._hashes.pop(upload_id, None)
        if cached is not None and cached[0] == size:
            return cached[1]
        # Another worker (or a restart) took the previous request: resume from the
        # state it saved, else hash again what the session holds.
        try:
            saved = await self._driver.get_content(layout.upload_hashstate(name, upload_id, size))
            restored = ResumableSha256.from_state(saved)
            if restored is not None:
                return restored
        except PathNotFoundError:
            pass
        hasher = _session_hasher()
        async for chunk in self._driver.reader(layout.upload_data(name, upload_id)):
            hasher.update(chunk)
        return hasher

    async def _append(
        self,
        name: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        start: int | None,
        length: int | None,
        durable: bool = False,
    ) -> tuple[int, Hasher]:
        """Append the body; with ``durable`` (the last request of an upload) the data
        is synced on the writer that wrote it, not on one opened again."""
        size = (await self.status(name, upload_id)).size
        if start is not None and start != size:
            raise HatchwayError(
                RANGE_INVALID,
                "content range does not start at the end of the upload",
                {"expected": size, "got": start},
            )
        hasher = await self._hasher_at(name, upload_id, size)
        writer: FileWriter = await self._driver.writer(
            layout.upload_data(name, upload_id), append=True
        )
        received = 0
        try:
            received = await stream_into(body, hasher, writer)
            if durable and (length is None or received == length):
                await writer.commit()
        except SinkError:
            # Storage failed mid-write: forget the hash; a retry re-reads the data.
            self._hashes.pop(upload_id, None)
            raise
        except BaseException:
            # The client went away: what reached the file is part of the upload, and a
            # resumed upload continues from the Range we report.
            self._remember(upload_id, writer.size, hasher)
            raise
        finally:
            await writer.close()
        self._remember(upload_id, size + received, hasher)
        if length is not None and received != length:
            raise HatchwayError(SIZE_INVALID, detail={"expected": length, "received": received})
        return size + received, hasher

    def _remember(self, upload_id: str, size: int, hasher: Hasher) -> None:
        self._hashes[upload_id] = (size, hasher)
        self._hashes.move_to_end(upload_id)
        while len(self._hashes) > _HASH_CACHE_SIZE:
            self._hashes.popitem(last=False)

    async def append(
        self,
        name: str,
        upload_id: str,
        body: AsyncIterator[bytes],
        start: int | None = None,
        length: int | None = None,
    ) -> UploadStatus:
        self._check_id(upload_id)
        async with self._session(name, upload_id):
            before = (await self.status(name, upload_id)).size
            size, hasher = await self._append(name, upload_id, body, start, length)
            await self._save_state(name, upload_id, before, size, hasher)
        return UploadStatus(upload_id, size)

    async def finish(
        self,
        name: str,
        upload_id: str,
        expected: Digest,
        body: AsyncIterator[bytes] | None = None,
        start: int | None = None,
        length: int | None = None,
    ) -> int:
        """Append the last bytes, verify the digest, make the blob durable and visible."""
        self._check_id(upload_id)
        async with self._session(name, upload_id):
            staged = await self._staged(name, upload_id, expected, body, start)
            if staged is not None:
                assert body is not None
                return await self._finish_staged(name, upload_id, expected, body, length, staged)
            if body is not None:
                size, hasher = await self._append(name, upload_id, body, start, length, True)
            else:
                try:
                    size = (await self.status(name, upload_id)).size
                except HatchwayError as unknown:  # no data: an earlier PUT may have moved it
                    published = await self._published(name, upload_id, expected)
                    if published is None:
                        raise unknown from None
                    return published
                hasher = await self._hasher_at(name, upload_id, size)
            self._remember(upload_id, size, hasher)
            if expected.algorithm != hasher.name:
                # Another algorithm (sha512) needs its own pass; the running sha256
                # stays cached for a retry with the other digest.
                hasher = new_hasher(expected.algorithm)
                async for chunk in self._driver.reader(layout.upload_data(name, upload_id)):
                    hasher.update(chunk)
            actual = hasher.hexdigest()
            if actual != expected.hex:
                raise HatchwayError(
                    DIGEST_INVALID,
                    detail={"expected": str(expected), "actual": f"{expected.algorithm}:{actual}"},
                )
            data = layout.upload_data(name, upload_id)
            # Durable before visible: fsync the data, then rename into the content store.
            if body is None:  # else synced as the body's writer finished
                writer = await self._driver.writer(data, append=True)
                await writer.commit()
            # What the data was verified as, for a PUT sent again after this process
            # died between moving the data into the store and dropping the session.
            await self._put_volatile(
                layout.upload_verified(name, upload_id), f"{expected} {size}".encode()
            )
            await self._blobs.ingest(data, expected, size)
            kept = await self._blobs.link(name, expected)
            await self._drop(name, upload_id)
        if not kept:
            raise _collected(expected)
        return size

    async def _published(self, name: str, upload_id: str, expected: Digest) -> int | None:
        """For a session whose data is gone: the size of what an earlier PUT verified and
        moved into the store, when its process died before linking the blob and dropping
        the session (a replica killed mid-PUT; nginx sends the PUT to the next one).
        Linked now, once the store holds the blob whole; None if there is no such PUT."""
        try:
            raw = await self._driver.get_content(layout.upload_verified(name, upload_id))
            digest, size = raw.decode().split(" ")
        except (PathNotFoundError, UnicodeDecodeError, ValueError):
            return None
        if digest != str(expected) or not await self._blobs.holds(expected, int(size)):
            return None
        kept = await self._blobs.link(name, expected)
        await self._drop(name, upload_id)
        if not kept:
            raise _collected(expected)
        return int(size)

    async def _staged(
        self,
        name: str,
        upload_id: str,
        expected: Digest,
        body: AsyncIterator[bytes] | None,
        start: int | None,
    ) -> StagedWriter | None:
        """A writer straight to the blob's own key, when the whole blob comes in this
        request with its digest (monolithic ``POST ?digest=``, or a ``PUT`` with the
        body on an empty session) and the store can hold it unseen until verified (S3:
        an object store has no rename, so the session's copy would be copied again)."""
        stage = getattr(self._driver, "staged_writer", None)
        if stage is None or body is None or start not in (None, 0):
            return None
        if expected.algorithm != "sha256":
            return None
        if (await self.status(name, upload_id)).size != 0:
            return None
        writer: StagedWriter = await stage(layout.blob_data(expected))
        return writer

    async def _finish_staged(
        self,
        name: str,
        upload_id: str,
        expected: Digest,
        body: AsyncIterator[bytes],
        length: int | None,
        writer: StagedWriter,
    ) -> int:
        """Hash while streaming to the blob's key; publish only if the digest matches,
        else drop it (nothing was visible, and a stored copy is never touched)."""
        hasher = new_hasher(expected.algorithm)
        try:
            size = await stream_into(body, hasher, writer)
            if length is not None and size != length:
                raise HatchwayError(SIZE_INVALID, detail={"expected": length, "received": size})
            if hasher.hexdigest() != expected.hex:
                actual = f"{expected.algorithm}:{hasher.hexdigest()}"
                raise HatchwayError(
                    DIGEST_INVALID, detail={"expected": str(expected), "actual": actual}
                )
            await self._blobs.publish_staged(expected, writer, size)
        finally:
            await writer.discard()  # after a commit: nothing left to drop
        kept = await self._blobs.link(name, expected)
        await self._drop(name, upload_id)
        if not kept:
            raise _collected(expected)
        return size

    async def cancel(self, name: str, upload_id: str) -> None:
        self._check_id(upload_id)
        async with self._session(name, upload_id):
            await self.status(name, upload_id)
            await self._drop(name, upload_id)

    async def _drop(self, name: str, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        with contextlib.suppress(PathNotFoundError):
            await self._driver.delete(layout.upload_dir(name, upload_id))

    async def started_at(self, name: str, upload_id: str) -> float:
        """Start time as a Unix timestamp (for purging stale sessions)."""
        try:
            raw = await self._driver.get_content(layout.upload_started(name, upload_id))
            return datetime.fromisoformat(raw.decode().replace("Z", "+00:00")).timestamp()
        except (PathNotFoundError, ValueError):
            try:
                return (await self._driver.stat(layout.upload_dir(name, upload_id))).modified
            except PathNotFoundError:
                return time.time()


def _collected(expected: Digest) -> HatchwayError:
    return HatchwayError(
        BLOB_UPLOAD_INVALID,
        "the blob was garbage-collected while the upload finished; upload it again",
        {"digest": str(expected)},
    )


def invalid_upload(reason: str) -> HatchwayError:
    return HatchwayError(BLOB_UPLOAD_INVALID, reason)
