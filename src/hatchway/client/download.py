"""Pull one blob into a file: streamed, hashed while written, renamed into place only when
size and digest match. A transfer cut short continues with ``Range`` from the bytes already
written instead of starting over."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from hatchway.client.blobs import PartialFile, short
from hatchway.client.manifest import Descriptor
from hatchway.client.session import RegistryError, TransferError, is_transient
from hatchway.client.upload import Transfer


class _Retry(Exception):
    """A transient failure mid-download."""


def fetch_blob(
    client: httpx.Client, repo: str, desc: Descriptor, dest: Path, transfer: Transfer
) -> None:
    """Download ``desc`` from ``repo`` to ``dest`` (atomically; verified)."""
    partial = PartialFile(dest, desc.digest)
    failures = 0
    try:
        while True:
            try:
                _stream_into(client, f"/v2/{repo}/blobs/{desc.digest}", partial, transfer)
                break
            except (httpx.TransportError, _Retry) as exc:
                failures += 1
                if failures >= transfer.retry.attempts:
                    raise TransferError(f"download {short(desc.digest)}: {exc}") from exc
                time.sleep(min(transfer.retry.cap, transfer.retry.base * 2 ** (failures - 1)))
                if partial.size:
                    transfer.reporter.note(
                        f"{short(desc.digest)}: resuming download at byte {partial.size}"
                    )
        partial.commit(desc.size)
    except BaseException:
        partial.discard()
        raise


def _stream_into(client: httpx.Client, url: str, partial: PartialFile, transfer: Transfer) -> None:
    transfer.check()
    headers = {"Range": f"bytes={partial.size}-"} if partial.size else {}
    with client.stream("GET", url, headers=headers) as r:
        if is_transient(r):
            raise _Retry(f"{r.status_code} {r.reason_phrase}")
        if r.status_code == 416 and partial.size:
            return  # we already hold every byte; commit() checks size and digest
        if r.status_code == 200 and partial.size:
            partial.restart()  # the registry ignored the Range
        elif r.status_code == 206:
            start = r.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start != str(partial.size):
                raise TransferError(f"registry answered a different range: {start}")
        elif r.status_code != 200:
            raise RegistryError(r, f"GET blob {short(partial.digest)}")
        for piece in r.iter_bytes():
            transfer.check()
            if transfer.limit is not None:
                transfer.limit.take(len(piece))
            partial.write(piece)
            transfer.reporter.update(partial.digest, partial.size)
