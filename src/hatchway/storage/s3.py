"""S3 driver (``storage.s3``): any S3-compatible object store, through aiobotocore.

Keys are distribution's: ``<rootdirectory>/docker/registry/v2/...`` with the leading
"/" dropped, so a bucket written by distribution's s3-aws driver is served as it is.
Directories are key prefixes; a directory exists while a key lies under it.

- Writes are atomic: PutObject, or a multipart upload completed on close (s3writer.py).
- ``move`` is a server-side copy (CopyObject, or UploadPartCopy in parallel above
  ``multipartcopythresholdsize``) and a delete: S3 has no rename.
- Modification times are kept in the object's ``x-amz-meta-mtime`` (sub-second, the
  writer's clock): S3's Last-Modified has whole seconds, too coarse for gc's grace.
  ``touch`` rewrites that metadata with a server-side copy onto the object itself.
- Listing pages through the subtree without a delimiter, skipping the rest of each
  child directory it meets, so a prefix left behind by a store that keeps empty
  "folders" (SeaweedFS does, for a while) never shows as a directory.
- ``lock`` is not the store's: it is delegated to a LockService (storage/locks.py).

One aiobotocore client per event loop, closed with that loop (a loop's async
generators are closed when ``asyncio.run`` ends), so nothing leaks across loops.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hatchway.storage.driver import (
    FileInfo,
    InvalidPathError,
    PathNotFoundError,
    StorageError,
    check_path,
)
from hatchway.storage.locks import LockService
from hatchway.storage.s3parts import MAX_PART, MAX_PARTS, MIN_PART, MiB, copy_ranges
from hatchway.storage.s3writer import S3Writer

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

READ_CHUNK = 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DELETE_BATCH = 1000
# "~" sorts after every character a key may hold: "<dir>/~" is past the whole directory.
_PAST_DIR = "/~"


@dataclass(frozen=True, slots=True)
class S3Options:
    bucket: str
    region: str | None = None
    regionendpoint: str | None = None
    accesskey: str | None = None
    secretkey: str | None = field(default=None, repr=False)
    sessiontoken: str | None = field(default=None, repr=False)
    rootdirectory: str = ""
    chunksize: int = 10 * MiB
    forcepathstyle: bool = False
    secure: bool = True
    skipverify: bool = False
    encrypt: bool = False
    keyid: str | None = None
    storageclass: str = "STANDARD"
    objectacl: str | None = None
    useragent: str | None = None
    multipartcopychunksize: int = 32 * MiB
    multipartcopymaxconcurrency: int = 100
    multipartcopythresholdsize: int = 32 * MiB
    publicendpoint: str | None = None


def _endpoint(url: str | None, secure: bool) -> str | None:
    if url is None or "://" in url:
        return url
    return ("https://" if secure else "http://") + url


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass
class _LoopClient:
    ready: asyncio.Task[S3Client]
    keeper: AsyncGenerator[None, None] | None = None


class S3Driver:
    name = "s3"

    def __init__(self, options: S3Options, locks: LockService) -> None:
        self.options = options
        self.bucket = options.bucket
        self._root = options.rootdirectory.strip("/")
        self._locks = locks
        self._session = get_session()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        # Directories seen to hold keys: such an ancestor is not checked again for being
        # a file before a write (the registry's layout never turns one into a file).
        self._known_dirs: set[str] = set()
        put: dict[str, Any] = {}
        if options.storageclass and options.storageclass.upper() != "NONE":
            put["StorageClass"] = options.storageclass
        if options.encrypt:
            put["ServerSideEncryption"] = "aws:kms" if options.keyid else "AES256"
            if options.keyid:
                put["SSEKMSKeyId"] = options.keyid
        if options.objectacl:
            put["ACL"] = options.objectacl
        self._put_args = put
        self._signer: Any = None  # a plain botocore client, made on first presign

    # -- clients --------------------------------------------------------------------

    def _client_args(
        self, endpoint: str | None, config_type: type[Config] = AioConfig
    ) -> dict[str, Any]:
        o = self.options
        config = config_type(
            s3={"addressing_style": "path" if o.forcepathstyle else "auto"},
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=64,
            user_agent_extra=o.useragent,
            # Plain payloads: S3-compatible stores differ on the newer checksum trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        args: dict[str, Any] = {
            "region_name": o.region or ("us-east-1" if o.regionendpoint else None),
            "endpoint_url": endpoint,
            "config": config,
            "verify": not o.skipverify,
            "use_ssl": o.secure,
        }
        if o.accesskey is not None:
            args.update(
                aws_access_key_id=o.accesskey,
                aws_secret_access_key=o.secretkey,
                aws_session_token=o.sessiontoken,
            )
        return args

    async def _open(self) -> S3Client:
        context = self._session.create_client(
            "s3", **self._client_args(_endpoint(self.options.regionendpoint, self.options.secure))
        )
        client = await context.__aenter__()

        async def keep() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                await context.__aexit__(None, None, None)

        keeper = keep()
        await anext(keeper)  # now owned by this loop: closed by its shutdown_asyncgens
        entry = self._clients.get(asyncio.get_running_loop())
        if entry is not None:
            entry.keeper = keeper
        return client

    async def client(self) -> S3Client:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None or (entry.ready.done() and entry.ready.exception() is not None):
            entry = _LoopClient(loop.create_task(self._open()))
            self._clients[loop] = entry
        return await asyncio.shield(entry.ready)

    async def aclose(self) -> None:
        """Close this loop's client now (otherwise it closes with its loop)."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None and entry.keeper is not None:
            await entry.keeper.aclose()

    # -- keys -----------------------------------------------------------------------

    def key(self, path: str) -> str:
        """distribution's s3Path: root + path, without a leading "/"."""
        return f"{self._root}{check_path(path)}".lstrip("/")

    def _prefix(self, path: str) -> str:
        """The key prefix of the directory ``path`` ("/" is the root)."""
        if path == "/":
            return f"{self._root}/" if self._root else ""
        return self.key(path) + "/"

    def _path_of(self, key: str) -> str:
        return key[len(self._root) :] if self._root else "/" + key

    def _fail(self, op: str, path: str, exc: Exception) -> StorageError:
        if isinstance(exc, ClientError):
            return StorageError(f"s3 {op} {path}: {_code(exc) or 'error'}")
        return StorageError(f"s3 {op} {path}: {type(exc).__name__}")

    # -- probes ---------------------------------------------------------------------

    async def _head(self, path: str) -> dict[str, Any] | None:
        client = await self.client()
        try:
            return dict(await client.head_object(Bucket=self.bucket, Key=self.key(path)))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return None
            raise self._fail("stat", path, exc) from None
        except BotoCoreError as exc:
            raise self._fail("stat", path, exc) from None

    async def _first_under(self, path: str) -> dict[str, Any] | None:
        """Any one object under directory ``path``, or None if it is no directory."""
        client = await self.client()
        try:
            found = await client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._prefix(path), MaxKeys=1
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", path, exc) from None
        contents = found.get("Contents") or []
        if contents:
            self._known_dirs.add(path)
            return dict(contents[0])
        return None

    async def _exists(self, path: str) -> bool:
        head, under = await asyncio.gather(self._head(path), self._first_under(path))
        return head is not None or under is not None

    @staticmethod
    def _mtime(head: dict[str, Any]) -> float:
        with contextlib.suppress(KeyError, ValueError):
            return float(head["Metadata"]["mtime"])
        return float(head["LastModified"].timestamp())

    async def _check_slot(self, path: str) -> None:
        """A key is a file or a directory, never both, as on a filesystem."""
        parts = path.split("/")[1:-1]
        ancestors = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
        unknown = [a for a in ancestors if a not in self._known_dirs]
        found = await asyncio.gather(self._first_under(path), *(self._head(a) for a in unknown))
        if found[0] is not None:
            raise StorageError(f"{path} is a directory")
        for ancestor, head in zip(unknown, found[1:], strict=True):
            if head is not None:
                raise StorageError(f"{ancestor} is a file")
        self._known_dirs.update(ancestors)

    # -- the driver interface -------------------------------------------------------

    def local_path(self, path: str) -> str | None:
        check_path(path)
        return None

    @contextlib.asynccontextmanager
    async def lock(self, path: str, wait: float) -> AsyncIterator[None]:
        # The lock first (local, no request), then whether the path exists: missing
        # from the start or deleted while we waited, it is the same answer, and waiters
        # ask the store nothing.
        check_path(path)
        async with self._locks.hold(path, wait):
            if not await self._exists(path):
                raise PathNotFoundError(path)
            yield

    async def get_content(self, path: str) -> bytes:
        key = self.key(path)
        client = await self.client()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                return await body.read()
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise PathNotFoundError(path) from None
            raise self._fail("get", path, exc) from None
        except BotoCoreError as exc:
            raise self._fail("get", path, exc) from None

    async def put_content(self, path: str, data: bytes) -> None:
        key = self.key(path)
        await self._check_slot(path)
        client = await self.client()
        try:
            await client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                Metadata={"mtime": repr(time.time())},
                **self._put_args,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("put", path, exc) from None

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:
        key = self.key(path)
        client = await self.client()
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if offset:
            args["Range"] = f"bytes={offset}-"
        try:
            response = await client.get_object(**args)
        except ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND:
                raise PathNotFoundError(path) from None
            if code == "InvalidRange":
                return  # at or past the end
            raise self._fail("get", path, exc) from None
        except BotoCoreError as exc:
            raise self._fail("get", path, exc) from None
        async with response["Body"] as body:
            while chunk := await body.read(READ_CHUNK):
                yield chunk

    def presigned_url(self, path: str, expires: int) -> str:
        """A GET URL for ``path`` signed for ``expires`` seconds, on the public endpoint
        (``publicendpoint``, else the one this driver uses). Signing needs no request."""
        if self._signer is None:
            o = self.options
            endpoint = _endpoint(o.publicendpoint or o.regionendpoint, o.secure)
            args = self._client_args(endpoint, Config)
            self._signer = botocore.session.get_session().create_client("s3", **args)
        params = {"Bucket": self.bucket, "Key": self.key(path)}
        return str(self._signer.generate_presigned_url("get_object", params, expires))

    async def writer(self, path: str, append: bool = False) -> S3Writer:
        key = self.key(path)
        await self._check_slot(path)
        base, head = 0, b""
        if append:
            found = await self._head(path)
            size = int(found["ContentLength"]) if found is not None else 0
            if size >= MIN_PART:
                base = size
            elif size:
                head = await self.get_content(path)
        return S3Writer(
            self.client,
            self.bucket,
            key,
            path,
            chunksize=self.options.chunksize,
            copychunk=self.options.multipartcopychunksize,
            put_args=self._put_args,
            base=base,
            head=head,
        )

    async def staged_writer(self, path: str) -> S3Writer:
        """A new ``path`` that nobody sees until ``commit()``, and that ``discard()``
        drops without touching what the key held before: the registry streams a blob
        whose digest it is told up front straight to the blob's key (no second copy)
        and publishes it only once the bytes hash to that digest."""
        return await self.writer(path)

    async def stat(self, path: str) -> FileInfo:
        check_path(path)
        head, under = await asyncio.gather(self._head(path), self._first_under(path))
        if head is not None:
            return FileInfo(path, int(head["ContentLength"]), self._mtime(head), False)
        if under is not None:
            return FileInfo(path, 0, float(under["LastModified"].timestamp()), True)
        raise PathNotFoundError(path)

    async def _walk(self, path: str) -> tuple[set[str], bool]:
        """Direct child names of directory ``path`` and whether it holds any key."""
        prefix = self._prefix(path)
        client = await self.client()
        names: set[str] = set()
        start_after = ""
        any_key = False
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": 1000}
            if start_after:
                args["StartAfter"] = start_after
            try:
                page = await client.list_objects_v2(**args)
            except (ClientError, BotoCoreError) as exc:
                raise self._fail("list", path, exc) from None
            contents = page.get("Contents") or []
            if not contents:
                return names, any_key
            any_key = True
            for item in contents:
                names.add(item["Key"][len(prefix) :].split("/", 1)[0])
            last = contents[-1]["Key"][len(prefix) :]
            if "/" in last:  # inside a child directory: skip the rest of it
                start_after = prefix + last.split("/", 1)[0] + _PAST_DIR
            elif page.get("IsTruncated"):
                start_after = contents[-1]["Key"]
            else:
                return names, any_key

    async def list(self, path: str) -> builtins.list[str]:
        if path != "/":
            check_path(path)
        names, any_key = await self._walk(path)
        if not any_key and path != "/":
            raise PathNotFoundError(path)
        base = "" if path == "/" else path
        children = []
        for name in sorted(names):
            try:
                children.append(check_path(f"{base}/{name}"))
            except InvalidPathError:
                continue  # a key no hatchway path maps to (written by something else)
        return children

    async def list_version(self, path: str) -> str | None:
        if path != "/":
            check_path(path)
            if await self._first_under(path) is None:
                raise PathNotFoundError(path)
        return None  # an object store keeps no directory version: list again

    async def _copy(self, source: str, dest: str, size: int) -> None:
        """Server-side copy of ``source`` (``size`` bytes) over ``dest``, new mtime.

        Onto itself (``touch``) one CopyObject up to 5 GiB: stores may (SeaweedFS does)
        then rewrite only the metadata, where copying in parts would copy the bytes."""
        client = await self.client()
        src = {"Bucket": self.bucket, "Key": self.key(source)}
        dest_key = self.key(dest)
        meta = {"Metadata": {"mtime": repr(time.time())}, **self._put_args}
        threshold = MAX_PART if source == dest else self.options.multipartcopythresholdsize
        if size <= threshold or size < MIN_PART:
            await client.copy_object(
                Bucket=self.bucket,
                Key=dest_key,
                CopySource=src,  # type: ignore[arg-type]
                MetadataDirective="REPLACE",
                **meta,
            )
            return
        upload = await client.create_multipart_upload(Bucket=self.bucket, Key=dest_key, **meta)
        upload_id = upload["UploadId"]
        gate = asyncio.Semaphore(self.options.multipartcopymaxconcurrency)

        async def part(number: int, first: int, last: int) -> dict[str, Any]:
            async with gate:
                result = await client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dest_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=src,  # type: ignore[arg-type]
                    CopySourceRange=f"bytes={first}-{last}",
                )
            return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

        ranges = copy_ranges(size, self.options.multipartcopychunksize, MAX_PARTS)
        try:
            parts = await asyncio.gather(*(part(n, a, b) for n, (a, b) in enumerate(ranges, 1)))
            await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=dest_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=dest_key, UploadId=upload_id
                )
            raise

    async def move(self, source: str, dest: str) -> None:
        self.key(source)
        self.key(dest)
        head = await self._head(source)
        if head is None:
            raise PathNotFoundError(source)
        if source == dest:
            return
        await self._check_slot(dest)
        try:
            await self._copy(source, dest, int(head["ContentLength"]))
            client = await self.client()
            await client.delete_object(Bucket=self.bucket, Key=self.key(source))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("move", f"{source} -> {dest}", exc) from None

    async def _keys_under(self, path: str) -> builtins.list[str]:
        prefix = self._prefix(path)
        client = await self.client()
        keys: builtins.list[str] = []
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents") or []]
        return keys

    async def delete(self, path: str) -> None:
        key = self.key(path)
        try:
            head, keys = await asyncio.gather(self._head(path), self._keys_under(path))
            if head is None and not keys:
                raise PathNotFoundError(path)
            self._known_dirs.difference_update(
                [d for d in self._known_dirs if d == path or d.startswith(path + "/")]
            )
            client = await self.client()
            if head is not None:
                keys.append(key)
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                result = await client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
                if result.get("Errors"):
                    failed = result["Errors"][0]
                    raise StorageError(f"s3 delete {path}: {failed.get('Code', 'error')}")
            if keys and head is None:
                await self.abort_incomplete(path, before=None)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("delete", path, exc) from None

    async def touch(self, path: str) -> None:
        head = await self._head(path)
        if head is None:
            raise PathNotFoundError(path)
        try:
            await self._copy(path, path, int(head["ContentLength"]))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("touch", path, exc) from None

    async def abort_incomplete(self, path: str, before: float | None) -> builtins.list[str]:
        """Abort multipart uploads under directory ``path`` begun before ``before``
        (all with None): what a writer killed mid-stream left. Their keys, as paths."""
        client = await self.client()
        prefix = self._prefix(path)
        aborted: builtins.list[str] = []
        paginator = client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads") or []:
                started = upload["Initiated"].timestamp()
                if before is not None and started >= before:
                    continue
                with contextlib.suppress(ClientError):
                    await client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted.append(self._path_of(upload["Key"]))
        return aborted
