"""Push and pull whole images between a registry and an OCI layout or ``docker save`` tar.

Blobs move in parallel (``jobs`` threads sharing one ``httpx.Client``), each verified
against its digest; manifests follow, children before the index that names them, as exact
bytes. A blob the target repository has is skipped (HEAD); one known to be in a sibling
repository of the same registry is mounted instead of uploaded (:class:`BlobLocations`,
filled by every push and pull of this process and of earlier runs, plus ``mount_from``).
An upload cut short (even by ``kill -9``) continues on the next run (:mod:`.cache`).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hatchway.client.archive import ArchiveSource, write_archive
from hatchway.client.auth import RegistryAuth
from hatchway.client.blobs import FileRegion, short
from hatchway.client.cache import MountSources, UploadSessions
from hatchway.client.credstore import CredentialStoreError, credentials_lookup
from hatchway.client.dockerconfig import Credentials, DockerConfigError
from hatchway.client.download import fetch_blob
from hatchway.client.layout import LayoutWriter, read_layout_dir
from hatchway.client.manifest import Descriptor, ManifestError, Node, host_platform_string
from hatchway.client.progress import NULL_REPORTER, Reporter
from hatchway.client.reference import Reference
from hatchway.client.remote import fetch_image, put_manifest
from hatchway.client.session import RateLimit, RetryPolicy, TransferError, open_client
from hatchway.client.upload import DEFAULT_CHUNK, BlobUpload, Cancelled, Transfer

__all__ = [
    "KNOWN",
    "BlobLocations",
    "Options",
    "client_auth_for",
    "parse_location",
    "pull",
    "push",
]


@dataclass
class Options:
    chunk_size: int = DEFAULT_CHUNK
    jobs: int = 3
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limit_rate: int | None = None
    mount_from: Sequence[str] = ()
    platform: str | None = None
    reporter: Reporter = NULL_REPORTER
    sessions: UploadSessions | None = None  # default: the user's cache, for the registry

    def transfer(self) -> Transfer:
        limit = RateLimit(self.limit_rate) if self.limit_rate else None
        return Transfer(self.chunk_size, self.retry, limit, self.reporter)


class BlobLocations:
    """Repositories a blob is known to be in, per registry: where a mount can come from.
    What this process saw first, then what earlier runs saw (``disk``)."""

    def __init__(self, disk: MountSources | None = None) -> None:
        self._lock = threading.Lock()
        self._where: dict[tuple[str, str], list[str]] = {}
        self._disk = disk

    def record(self, registry: str, repo: str, digests: Sequence[str]) -> None:
        with self._lock:
            for digest in digests:
                repos = self._where.setdefault((registry, digest), [])
                if repo in repos:
                    repos.remove(repo)
                repos.insert(0, repo)  # most recent first
        if self._disk is not None:
            self._disk.record(registry, repo, digests)

    def candidates(self, registry: str, digest: str, target: str) -> list[str]:
        with self._lock:
            found = list(self._where.get((registry, digest), []))
        if self._disk is not None:
            found += self._disk.repositories(registry, digest)
        return [r for r in dict.fromkeys(found) if r != target]


KNOWN = BlobLocations(MountSources())


def client_auth_for(
    server: str, username: str | None = None, password: str | None = None
) -> httpx.Auth:
    """Docker's registry auth for ``server``: these credentials, else the ones ``hatchway
    login`` (or docker login) stored, else anonymous (the token dance still runs)."""
    if username is not None:
        return RegistryAuth(Credentials(username, password or ""))
    stored = credentials_lookup()

    def lookup(key: str) -> Credentials | None:
        try:
            return stored(key)
        except (DockerConfigError, CredentialStoreError) as exc:
            raise TransferError(f"cannot read the credentials for {key}: {exc}") from None

    return RegistryAuth(lookup)


def parse_location(spec: str, *, dest: bool = False) -> tuple[str, Path, str | None]:
    """``[oci:|docker-archive:]PATH[:NAME]`` -> (``oci`` | ``docker-archive``, path, name).

    Without a prefix a directory is a layout and a file a tar; a destination that does not
    exist yet is a tar if it ends in ``.tar``.
    """
    kind = None
    for prefix in ("oci:", "docker-archive:"):
        if spec.startswith(prefix):
            kind, spec = prefix[:-1], spec[len(prefix) :]
    path, name = Path(spec), None
    if not path.exists():
        # NAME may hold colons itself (app:1.0): the path is the first prefix that fits.
        after_dirs = spec.rfind("/") + 1
        for i, char in enumerate(spec):
            if char == ":" and i >= after_dirs and (dest or Path(spec[:i]).exists()):
                path, name = Path(spec[:i]), spec[i + 1 :] or None
                break
    if kind is None:
        if path.is_dir():
            kind = "oci"
        elif path.is_file() or (dest and path.suffix == ".tar"):
            kind = "docker-archive"
        elif dest:
            kind = "oci"
        else:
            raise ManifestError(f"{path} does not exist")
    return kind, path, name


def _run_parallel(
    work: Callable[[Descriptor], None], items: Sequence[Descriptor], jobs: int, t: Transfer
) -> None:
    """Run ``work`` on every item, ``jobs`` at a time; the first failure stops the rest."""
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="blob") as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            t.cancel.set()
            for future in futures:
                future.cancel()
            raise


def _label(verb: str, desc: Descriptor) -> str:
    kind = "config" if "config" in desc.media_type else "layer"
    return f"{verb} {short(desc.digest)} {kind}"


def push(
    source: str,
    ref: Reference,
    *,
    auth: httpx.Auth | None = None,
    insecure: bool = False,
    options: Options | None = None,
    known: BlobLocations = KNOWN,
) -> str:
    """Push the image at ``source`` (layout dir or docker save tar, ``:NAME`` selects) to
    ``ref``; returns the pushed manifest's digest."""
    options = options or Options()
    kind, path, name = parse_location(source)
    src = read_layout_dir(path) if kind == "oci" else ArchiveSource(path)
    image = src.image(name, options.platform)
    if ref.digest and ref.digest != image.descriptor.digest:
        raise ManifestError(f"{source} is {image.descriptor.digest}, not {ref.digest}")
    with open_client(ref.registry, auth, insecure=insecure) as client:
        push_image(client, ref, image, src.region, options, known)
    return image.descriptor.digest


def push_image(
    client: httpx.Client,
    ref: Reference,
    image: Node,
    region: Callable[[str], FileRegion],
    options: Options,
    known: BlobLocations = KNOWN,
) -> None:
    t = options.transfer()
    repo = ref.repository
    blobs = image.all_blobs()
    regions = {b.digest: region(b.digest) for b in blobs}  # every blob is there, or stop now
    sessions = options.sessions if options.sessions is not None else UploadSessions(ref.registry)

    def one(desc: Descriptor) -> None:
        mounts = [*known.candidates(ref.registry, desc.digest, repo), *options.mount_from]
        mounts = [m for m in dict.fromkeys(mounts) if m != repo]
        t.reporter.begin(desc.digest, _label("push", desc), desc.size)
        try:
            upload = BlobUpload(client, repo, t, sessions)
            outcome = upload.push(desc, regions[desc.digest], mounts)
        except Cancelled:
            raise
        except BaseException:
            t.reporter.end(desc.digest, "failed")
            raise
        t.reporter.end(desc.digest, outcome)

    _run_parallel(one, blobs, options.jobs, t)
    for node in image.walk():
        reference = (ref.tag or node.descriptor.digest) if node is image else None
        put_manifest(client, repo, node, reference or node.descriptor.digest, t)
    named = f"{ref.registry}/{repo}" + (f":{ref.tag}" if ref.tag else "")
    t.reporter.note(f"pushed {named}@{image.descriptor.digest}")
    known.record(ref.registry, repo, [b.digest for b in blobs])


def pull(
    ref: Reference,
    dest: str,
    *,
    auth: httpx.Auth | None = None,
    insecure: bool = False,
    options: Options | None = None,
    known: BlobLocations = KNOWN,
) -> str:
    """Pull ``ref`` into ``dest`` (layout dir, or a ``.tar`` written as docker save does);
    returns the root manifest's digest. A tar holds one image: an index is resolved to
    ``options.platform``, by default this machine's."""
    options = options or Options()
    kind, path, name = parse_location(dest, dest=True)
    platform = options.platform
    if kind == "docker-archive" and platform is None:
        platform = host_platform_string()
    t = options.transfer()
    with open_client(ref.registry, auth, insecure=insecure) as client:
        image = fetch_image(client, ref, platform, t)
        if kind == "oci":
            writer = LayoutWriter(path)
            _fetch_all(client, ref.repository, image, writer, options.jobs, t)
            writer.name(image.descriptor, name or ref.tag)
        else:
            if image.is_index:
                raise ManifestError(f"{ref} is an index: choose one image with --platform")
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=".hatchway-pull-") as tmp:
                stage = LayoutWriter(Path(tmp))
                _fetch_all(client, ref.repository, image, stage, options.jobs, t)
                repo_tag = _repo_tag(ref, name)
                write_archive(path, Path(tmp), image, repo_tag)
    known.record(ref.registry, ref.repository, [b.digest for b in image.all_blobs()])
    return image.descriptor.digest


def _repo_tag(ref: Reference, name: str | None) -> str | None:
    """The archive's ``RepoTags`` entry: NAME if it is a whole ``repo:tag``, else the
    pulled repository with NAME (or the pulled tag) as the tag."""
    if name and ":" in name:
        return name
    tag = name or ref.tag
    return f"{ref.registry}/{ref.repository}:{tag}" if tag else None


def _fetch_all(
    client: httpx.Client, repo: str, image: Node, writer: LayoutWriter, jobs: int, t: Transfer
) -> None:
    def one(desc: Descriptor) -> None:
        t.reporter.begin(desc.digest, _label("pull", desc), desc.size)
        if writer.has_blob(desc):
            t.reporter.end(desc.digest, "already here")
            return
        try:
            fetch_blob(client, repo, desc, writer.blob_path(desc.digest), t)
        except Cancelled:
            raise
        except BaseException:
            t.reporter.end(desc.digest, "failed")
            raise
        t.reporter.end(desc.digest, "pulled")

    _run_parallel(one, image.all_blobs(), jobs, t)
    for node in image.walk():
        writer.put_manifest(node)
