"""Stream a request body into storage while hashing it, in one pass over the data.

Receiving, hashing and writing overlap: while the event loop receives batch N+1,
batch N is hashed and written in a worker thread (OpenSSL's SHA-256 and writev release
the GIL). A writer that can write from a thread (``BlockingWriter``: the filesystem)
takes the batch as the list of received buffers, in one writev, so the bytes are never
joined or copied in user space and each batch costs one hop to a thread; other writers
get the batch joined. Memory stays bounded by two batches whatever the blob size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hatchway.oci.digest import Hasher
from hatchway.storage.driver import BlockingWriter, FileWriter

BATCH = 1024 * 1024
# A body past BIG_AFTER goes in 4 MiB batches: fewer hops to the thread, and a big
# blob's pushes ran faster (bench/README.md); small blobs keep small batches, so many
# concurrent pushes hold little memory.
BIG_BATCH = 4 * 1024 * 1024
BIG_AFTER = 32 * 1024 * 1024


class SinkError(Exception):
    """Writing failed; ``written`` bytes reached storage and the hash is unusable."""

    def __init__(self, written: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.written = written
        self.cause = cause


def _hash_and_write(hasher: Hasher, writer: BlockingWriter, parts: list[bytes]) -> None:
    for part in parts:
        hasher.update(part)
    writer.write_blocking(parts)


async def _process(hasher: Hasher, writer: FileWriter, parts: list[bytes]) -> None:
    if isinstance(writer, BlockingWriter):
        await asyncio.to_thread(_hash_and_write, hasher, writer, parts)
        return
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    await asyncio.gather(asyncio.to_thread(hasher.update, data), writer.write(data))


async def _quiesce(task: asyncio.Future[None]) -> None:
    """Wait until ``task`` is done, whatever its outcome, even if cancelled meanwhile."""
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if not task.cancelled():
        task.exception()  # retrieved: the caller reports the failure that got us here
    if cancelled:
        raise asyncio.CancelledError


async def stream_into(body: AsyncIterator[bytes], hasher: Hasher, writer: FileWriter) -> int:
    """Hash and write every byte of ``body``; return how many bytes were stored.

    If the client goes away mid-body, what was received is still stored and hashed
    (the upload resumes from there); the receive error is re-raised afterwards.
    """
    written = 0
    pending: asyncio.Task[None] | None = None
    parts: list[bytes] = []
    buffered = 0

    async def settle() -> None:
        nonlocal pending, written
        if pending is not None:
            # Shielded: cancelling us must not cancel the task while its thread writes.
            await asyncio.shield(pending)
            pending = None

    async def submit(batch: list[bytes], size: int) -> None:
        nonlocal pending, written
        await settle()
        pending = asyncio.ensure_future(_process(hasher, writer, batch))
        written += size

    receive_error: BaseException | None = None
    try:
        try:
            async for chunk in body:
                parts.append(chunk)
                buffered += len(chunk)
                if buffered >= (BATCH if written < BIG_AFTER else BIG_BATCH):
                    batch, size = parts, buffered
                    parts, buffered = [], 0
                    await submit(batch, size)
        except (ConnectionError, asyncio.CancelledError, OSError) as exc:
            receive_error = exc
        except Exception as exc:  # aiohttp's payload errors are not ConnectionErrors
            receive_error = exc
        if parts:
            await submit(parts, buffered)
        await settle()
    except BaseException as exc:
        if pending is not None:
            # A cancelled task would leave its thread writing: wait for it, so that
            # nothing writes through the writer once the caller closes it (and
            # releases the upload session).
            await _quiesce(pending)
        raise SinkError(writer.size, exc) from exc
    if receive_error is not None:
        raise receive_error
    return written
