"""Push one blob: skip it if the registry has it, mount it from a sibling repository, or
upload it in resumable chunks.

Each chunk is a ``PATCH`` with ``Content-Range``. After a transient failure (connection
error, 5xx) the registry is asked where the upload stands (``GET`` on the session →
``Range``) and the upload continues from exactly there, never from the start. A 401 is the
token expiring mid-upload: it takes the same path, and the auth flow attaches a fresh token
to the status request and the resent chunk. A chunk body can be sent more than once
(:class:`_Chunk` re-reads its part of the file on every pass), so an auth flow may also
replay it itself. The digest is verified over the bytes actually sent: the running hash is
rewound to the registry's offset after each resume.

With :class:`~hatchway.client.cache.UploadSessions`, each session's location and confirmed
offset are also kept on disk, so a push killed mid-layer (``kill -9``, a lost machine)
continues the same session when run again, from the offset the registry reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx

from hatchway.client.blobs import (
    DigestMismatch,
    FileRegion,
    Hasher,
    check_digest,
    hasher_for,
    short,
)
from hatchway.client.cache import UploadSessions
from hatchway.client.challenge import origin_of
from hatchway.client.manifest import Descriptor
from hatchway.client.progress import NULL_REPORTER, Reporter
from hatchway.client.session import (
    RateLimit,
    RegistryError,
    RetryPolicy,
    TransferError,
    expect,
    is_transient,
    location_of,
    retrying,
)

DEFAULT_CHUNK = 16 * 1024 * 1024


class Cancelled(TransferError):
    """Another transfer of the same command failed, so this one stopped."""


@dataclass
class Transfer:
    """What every blob transfer of one command shares."""

    chunk_size: int = DEFAULT_CHUNK
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limit: RateLimit | None = None
    reporter: Reporter = NULL_REPORTER
    cancel: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("cancelled")


class _Chunk:
    """The body of one PATCH: bytes ``[start, end)`` of the region, hashed on the way out.

    Iterable more than once (each pass re-reads the file from ``start`` and hashes from the
    checkpoint), so httpx can replay it after an auth round trip.
    """

    def __init__(
        self,
        region: FileRegion,
        start: int,
        end: int,
        checkpoint: Hasher,
        transfer: Transfer,
        on_progress: Callable[[int], None],
    ) -> None:
        self.region, self.start, self.end = region, start, end
        self._checkpoint = checkpoint
        self._transfer = transfer
        self._on_progress = on_progress
        self.hasher: Hasher | None = None  # set when a pass sent every byte

    def __iter__(self) -> Iterator[bytes]:
        hasher = self._checkpoint.copy()
        self.hasher = None
        position = self.start
        for piece in self.region.pieces(self.start, self.end):
            self._transfer.check()
            if self._transfer.limit is not None:
                self._transfer.limit.take(len(piece))
            hasher.update(piece)
            position += len(piece)
            self._on_progress(position)
            yield piece
        self.hasher = hasher


def _held(response: httpx.Response, floor: int) -> int | None:
    """Bytes the registry holds, from ``Range: 0-<last>`` (None when it sends none).

    ``0-0`` means one byte, or nothing at all (distribution's shape for an empty upload):
    nothing, unless ``floor`` bytes are already known to be there.
    """
    raw = response.headers.get("Range")
    if not raw:
        return None
    last = int(raw.removeprefix("bytes=").split("-", 1)[1])
    return 0 if last == 0 and floor == 0 else last + 1


class BlobUpload:
    """One blob into one repository; ``sessions`` remembers the upload across runs."""

    def __init__(
        self,
        client: httpx.Client,
        repo: str,
        transfer: Transfer,
        sessions: UploadSessions | None = None,
    ) -> None:
        self.client, self.repo, self.t = client, repo, transfer
        self.sessions = sessions

    def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        self.t.check()
        return retrying(
            self.t.retry,
            lambda: self.client.request(method, url, params=params, headers=headers),
        )

    def exists(self, digest: str) -> bool:
        r = self._send("HEAD", f"/v2/{self.repo}/blobs/{digest}")
        if r.status_code == 404:
            return False
        expect(r, f"HEAD blob {digest}", 200)
        return True

    def push(self, desc: Descriptor, region: FileRegion, mount_from: Sequence[str] = ()) -> str:
        """``exists``, ``mounted from <repo>`` or ``pushed``: what it took to get it there."""
        if self.exists(desc.digest):
            self._forget(desc.digest)
            return "exists"
        location: httpx.URL | None = None
        for source in mount_from:
            if location is not None:  # the previous mount fell back to an upload: drop it
                self._send("DELETE", location).close()
            r = self._send(
                "POST",
                f"/v2/{self.repo}/blobs/uploads/",
                params={"mount": desc.digest, "from": source},
            )
            if r.status_code == 201:
                self._forget(desc.digest)
                return f"mounted from {source}"
            location = location_of(expect(r, f"mount {short(desc.digest)}", 202))
        start = 0
        recorded = self._recorded(desc, region)
        if recorded is not None:
            if location is not None:  # the mount's fallback upload: the recorded one is further
                self._send("DELETE", location).close()
            location, start = recorded
            self.t.reporter.note(f"{short(desc.digest)}: resuming upload at byte {start}")
        elif location is None:
            location = self._start()
        try:
            self._upload(desc, region, location, start)
        except (DigestMismatch, RegistryError):
            self._forget(desc.digest)  # this session cannot end well: never resume it
            raise
        self._forget(desc.digest)
        return "pushed"

    def _forget(self, digest: str) -> None:
        if self.sessions is not None:
            self.sessions.drop(self.repo, digest)

    def _remember(self, digest: str, location: httpx.URL, offset: int) -> None:
        if self.sessions is not None:
            self.sessions.put(self.repo, digest, str(location), offset)

    def _recorded(self, desc: Descriptor, region: FileRegion) -> tuple[httpx.URL, int] | None:
        """The session an earlier run left for this blob, and the bytes the registry holds
        of it; None (and the record gone) when there is none it still knows."""
        record = self.sessions.get(self.repo, desc.digest) if self.sessions else None
        if record is None:
            return None
        if origin_of(record.location) != origin_of(str(self.client.base_url)):
            self._forget(desc.digest)  # only ever resumed at the registry being pushed to
            return None
        try:
            r = self._send("GET", httpx.URL(record.location))
        except (httpx.HTTPError, httpx.InvalidURL):
            r = None
        if r is None or r.status_code not in (200, 204) or not r.headers.get("Range"):
            self._forget(desc.digest)  # purged, finished, or not ours: start afresh
            return None
        held = _held(r, record.offset)
        if held is None or held > region.size:
            self._forget(desc.digest)
            return None
        location = location_of(r) if r.headers.get("Location") else httpx.URL(record.location)
        return location, held

    def _start(self) -> httpx.URL:
        r = self._send("POST", f"/v2/{self.repo}/blobs/uploads/")
        return location_of(expect(r, "start upload", 202))

    def _status(self, location: httpx.URL, floor: int) -> tuple[httpx.URL, int] | None:
        """Where the session stands; None when the registry no longer knows it."""
        r = self._send("GET", location)
        if r.status_code == 404:
            return None
        expect(r, "upload status", 204, 200)
        return location_of(r), _held(r, floor) or 0

    def _upload(
        self, desc: Descriptor, region: FileRegion, location: httpx.URL, start: int = 0
    ) -> None:
        if region.size != desc.size:
            raise TransferError(f"{desc.digest}: file holds {region.size} bytes, not {desc.size}")
        rewind = _Rewinder(region, desc.digest)
        offset, hasher = rewind(0, hasher_for(desc.digest), start)
        failures = 0
        while True:
            location = self._send_all(desc, region, location, offset, hasher)
            lost = self._finish(desc, location)
            if lost is None:
                return
            # A replica died with the session half-dropped, or it was purged: the
            # registry has neither the session nor the blob. The whole blob again.
            failures += 1
            if failures >= self.t.retry.attempts:
                raise RegistryError(lost, f"finish upload {short(desc.digest)}")
            self.t.reporter.note(f"{short(desc.digest)}: upload session lost, starting over")
            location, offset, hasher = self._start(), 0, hasher_for(desc.digest)

    def _send_all(
        self,
        desc: Descriptor,
        region: FileRegion,
        location: httpx.URL,
        offset: int,
        hasher: Hasher,
    ) -> httpx.URL:
        """PATCH the rest of the blob from ``offset``; the session's location when the
        registry holds every byte and they hash to the digest."""
        rewind = _Rewinder(region, desc.digest)
        failures = 0
        while offset < region.size:
            self._remember(desc.digest, location, offset)
            end = min(offset + self.t.chunk_size, region.size)
            body = _Chunk(region, offset, end, hasher, self.t, self._progress(desc.digest))
            failure = self._patch(location, body)
            if isinstance(failure, httpx.Response) and failure.status_code == 202:
                location = location_of(failure)
                held = _held(failure, end)
                if held in (None, end) and body.hasher is not None:
                    offset, hasher, failures = end, body.hasher, 0
                else:
                    offset, hasher = rewind(offset, hasher, end if held is None else held)
                continue
            failures += 1
            if failures >= self.t.retry.attempts:
                if isinstance(failure, httpx.Response):
                    raise RegistryError(failure, f"upload {short(desc.digest)}")
                raise TransferError(f"upload {short(desc.digest)}: {failure}") from failure
            time.sleep(min(self.t.retry.cap, self.t.retry.base * 2 ** (failures - 1)))
            status = self._status(location, offset)
            if status is None:
                self.t.reporter.note(f"{short(desc.digest)}: upload session lost, starting over")
                location, offset, hasher = self._start(), 0, hasher_for(desc.digest)
                continue
            location, held = status
            if _refused(failure) and held == offset == 0:
                held = 1  # "0-0" was one byte after all
            offset, hasher = rewind(offset, hasher, held)
            self.t.reporter.note(f"{short(desc.digest)}: resuming upload at byte {held}")
        check_digest(hasher, desc.digest, f"{desc.digest} as sent")
        return location

    def _patch(self, location: httpx.URL, body: _Chunk) -> httpx.Response | BaseException:
        """The PATCH's answer if it is success or worth a retry; raises on any other."""
        try:
            r = self.client.patch(
                location,
                content=body,
                headers={
                    "Content-Range": f"{body.start}-{body.end - 1}",
                    "Content-Length": str(body.end - body.start),
                    "Content-Type": "application/octet-stream",
                },
            )
        except httpx.TransportError as exc:
            return exc
        retry_auth = r.status_code == 401 and self.client.auth is not None
        if r.status_code == 202 or is_transient(r) or retry_auth or r.status_code == 416:
            r.close()
            return r
        raise RegistryError(r, "upload")

    def _progress(self, key: str) -> Callable[[int], None]:
        reporter = self.t.reporter
        return lambda done: reporter.update(key, done)

    def _finish(self, desc: Descriptor, location: httpx.URL) -> httpx.Response | None:
        """None once the blob is in; the registry's answer when it knows neither the
        session nor the blob (worth starting over)."""
        url = location.copy_merge_params({"digest": desc.digest})
        r = self._send("PUT", url, headers={"Content-Length": "0"})
        if r.status_code == 404:
            if self.exists(desc.digest):
                return None  # an earlier PUT got through and only its answer was lost
            if RegistryError(r, "finish upload").code == "BLOB_UPLOAD_UNKNOWN":
                return r
        expect(r, f"finish upload {short(desc.digest)}", 201, 204)
        return None


def _refused(failure: httpx.Response | BaseException) -> bool:
    return isinstance(failure, httpx.Response) and failure.status_code == 416


class _Rewinder:
    """The running hash at another offset: on from the checkpoint, or from zero if behind it."""

    def __init__(self, region: FileRegion, digest: str) -> None:
        self.region, self.digest = region, digest

    def __call__(self, base: int, base_hasher: Hasher, target: int) -> tuple[int, Hasher]:
        if target > self.region.size:
            raise TransferError(f"registry holds {target} bytes of a {self.region.size}-byte blob")
        if target < base:
            base, base_hasher = 0, hasher_for(self.digest)
        hasher = base_hasher.copy()
        for piece in self.region.pieces(base, target):
            hasher.update(piece)
        return target, hasher
