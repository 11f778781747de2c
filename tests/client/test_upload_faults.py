"""The client's transfer logic against a registry that fails on purpose at exact offsets:
uploads continue from the byte the registry reports, never from the start; tokens that
expire mid-upload are replaced; digests are checked; downloads resume with Range."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Generator
from pathlib import Path

import httpx
import pytest

from hatchway.client.auth import RegistryAuth
from hatchway.client.blobs import DigestMismatch, FileRegion
from hatchway.client.download import fetch_blob
from hatchway.client.manifest import Descriptor, Node
from hatchway.client.reference import parse_reference
from hatchway.client.session import RetryPolicy, TransferError
from hatchway.client.transfer import Options, push_image
from hatchway.client.upload import BlobUpload, Transfer
from tests.support.fakeregistry import FakeRegistry, Fault

KiB = 1024
FAST = RetryPolicy(attempts=5, base=0.001, cap=0.01)
LAYER = "application/vnd.oci.image.layer.v1.tar"


def layer_file(tmp_path: Path, size: int, name: str = "layer") -> tuple[Descriptor, FileRegion]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return Descriptor(LAYER, digest, size), FileRegion.whole(path)


def push_one(registry: FakeRegistry, desc: Descriptor, region: FileRegion, **kw: object) -> str:
    transfer = Transfer(chunk_size=64 * KiB, retry=FAST)
    with registry.client(kw.get("auth")) as client:  # type: ignore[arg-type]
        return BlobUpload(client, "t/app", transfer).push(desc, region)


def methods(registry: FakeRegistry) -> list[str]:
    return [m for m, path, _ in registry.log if "/blobs/uploads/" in path]


@pytest.mark.parametrize("kind", ["cut", "500"])
def test_an_upload_continues_from_the_registrys_offset(tmp_path: Path, kind: str) -> None:
    desc, region = layer_file(tmp_path, 300 * KiB)
    registry = FakeRegistry(faults=[Fault(100 * KiB + 17, kind), Fault(250 * KiB + 1, kind)])

    assert push_one(registry, desc, region) == "pushed"

    assert registry.blobs[desc.digest] == region.read()
    assert methods(registry).count("POST") == 1  # one session throughout
    assert methods(registry).count("GET") == 2  # asked where it stood after each failure
    assert 416 not in [s for _, _, s in registry.log]  # never a wrong offset


def test_a_chunk_boundary_failure_resends_nothing_twice(tmp_path: Path) -> None:
    desc, region = layer_file(tmp_path, 128 * KiB)
    registry = FakeRegistry(faults=[Fault(64 * KiB, "cut")])  # the whole first chunk arrived
    push_one(registry, desc, region)
    assert registry.blobs[desc.digest] == region.read()
    assert methods(registry) == ["POST", "PATCH", "GET", "PATCH", "PUT"]


class ForgetfulBearer(httpx.Auth):
    """The smallest token flow that drops a refused token, as docker's client does."""

    def __init__(self) -> None:
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code != 401:
            return
        self.token = None  # refused: never sent again
        if not isinstance(request.stream, httpx.ByteStream):
            return  # a one-shot body: the caller resends, and gets a fresh token then
        token_response = yield httpx.Request("GET", "https://fake.test/token")
        token_response.read()
        self.token = token_response.json()["token"]
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def test_a_token_expiring_mid_upload_is_renewed_and_the_upload_continues(
    tmp_path: Path,
) -> None:
    desc, region = layer_file(tmp_path, 256 * KiB)
    registry = FakeRegistry(token_auth=True, faults=[Fault(100 * KiB, "expire")])

    push_one(registry, desc, region, auth=ForgetfulBearer())

    assert registry.blobs[desc.digest] == region.read()
    assert registry.tokens_issued == 2
    assert methods(registry).count("POST") == 1
    assert ("PATCH", 401) in [(m, s) for m, _, s in registry.log]


def test_registry_auth_renews_a_token_refused_mid_upload(tmp_path: Path) -> None:
    """The same with the real flow: it drops the refused token, the resend gets a new one."""
    desc, region = layer_file(tmp_path, 256 * KiB)
    registry = FakeRegistry(token_auth=True, faults=[Fault(100 * KiB, "expire")])
    push_one(registry, desc, region, auth=RegistryAuth())
    assert registry.blobs[desc.digest] == region.read()


def test_a_file_that_does_not_match_its_digest_is_not_committed(tmp_path: Path) -> None:
    desc, region = layer_file(tmp_path, 100 * KiB)
    wrong = Descriptor(LAYER, "sha256:" + "0" * 64, desc.size)
    registry = FakeRegistry()
    with pytest.raises(DigestMismatch, match="as sent"):
        push_one(registry, wrong, region)
    assert "PUT" not in methods(registry)
    assert registry.blobs == {}


def test_an_existing_blob_is_not_sent(tmp_path: Path) -> None:
    desc, region = layer_file(tmp_path, 10 * KiB)
    registry = FakeRegistry(blobs={desc.digest: region.read()})
    assert push_one(registry, desc, region) == "exists"
    assert methods(registry) == []


def test_a_lost_session_starts_over_once(tmp_path: Path) -> None:
    desc, region = layer_file(tmp_path, 200 * KiB)
    registry = FakeRegistry(faults=[Fault(70 * KiB, "cut")])
    real = registry._route

    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/uploads/" in request.url.path:
            registry.sessions.clear()  # purged while we were away
        return real(request)

    registry._route = route  # type: ignore[method-assign]
    push_one(registry, desc, region)
    assert registry.blobs[desc.digest] == region.read()
    assert methods(registry).count("POST") == 2


def test_a_session_lost_before_its_put_starts_over(tmp_path: Path) -> None:
    """A replica killed while it dropped the session (nginx retried the PUT elsewhere):
    the PUT answers BLOB_UPLOAD_UNKNOWN and the blob is not there; the whole blob goes
    again in a new session instead of failing the push (CI: hatchway push through nginx)."""
    desc, region = layer_file(tmp_path, 200 * KiB)
    registry = FakeRegistry()
    real = registry._route
    lost: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/uploads/" in request.url.path and not lost:
            lost.append(request.url.path)
            registry.sessions.clear()
        return real(request)

    registry._route = route  # type: ignore[method-assign]
    assert push_one(registry, desc, region) == "pushed"
    assert registry.blobs[desc.digest] == region.read()
    assert methods(registry).count("POST") == 2
    assert methods(registry).count("PUT") == 2


def test_a_session_the_registry_keeps_losing_gives_up(tmp_path: Path) -> None:
    desc, region = layer_file(tmp_path, 10 * KiB)
    registry = FakeRegistry()
    real = registry._route

    def route(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/uploads/" in request.url.path:
            registry.sessions.clear()
        return real(request)

    registry._route = route  # type: ignore[method-assign]
    with pytest.raises(TransferError, match="BLOB_UPLOAD_UNKNOWN"):
        push_one(registry, desc, region)
    assert methods(registry).count("POST") == FAST.attempts


def test_persistent_failure_gives_up_with_the_registrys_error(tmp_path: Path) -> None:
    desc, region = layer_file(tmp_path, 100 * KiB)
    registry = FakeRegistry(faults=[Fault(10 * KiB * (i + 1), "500") for i in range(20)])
    with pytest.raises(TransferError, match="500"):
        push_one(registry, desc, region)


def test_layers_go_in_parallel(tmp_path: Path) -> None:
    """Each PATCH waits until three are in flight at once: serial uploads would time out."""
    layers = [layer_file(tmp_path, 20 * KiB, f"l{i}") for i in range(3)]
    registry = FakeRegistry(barrier=threading.Barrier(3))
    regions = {d.digest: r for d, r in layers}
    manifest = b'{"schemaVersion": 2}'
    node = Node(
        Descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            "sha256:" + hashlib.sha256(manifest).hexdigest(),
            len(manifest),
        ),
        manifest,
        [d for d, _ in layers],
    )
    with registry.client() as client:
        push_image(
            client,
            parse_reference("fake.test/t/app:1"),
            node,
            regions.__getitem__,
            Options(jobs=3, retry=FAST),
        )
    assert set(registry.blobs) == set(regions)
    assert registry.manifests["1"] == manifest


def test_a_download_cut_short_resumes_with_range(tmp_path: Path) -> None:
    data = os.urandom(500 * KiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    registry = FakeRegistry(blobs={digest: data}, download_cut_at=123 * KiB)
    dest = tmp_path / "blob"
    with registry.client() as client:
        fetch_blob(
            client, "t/app", Descriptor(LAYER, digest, len(data)), dest, Transfer(retry=FAST)
        )
    assert dest.read_bytes() == data
    gets = [s for m, p, s in registry.log if m == "GET"]
    assert gets == [200, 206]


def test_a_download_that_does_not_match_is_not_kept(tmp_path: Path) -> None:
    data = b"not what the digest says"
    digest = "sha256:" + "1" * 64
    registry = FakeRegistry(blobs={digest: data})
    dest = tmp_path / "blob"
    with registry.client() as client, pytest.raises(DigestMismatch):
        fetch_blob(
            client, "t/app", Descriptor(LAYER, digest, len(data)), dest, Transfer(retry=FAST)
        )
    assert list(tmp_path.iterdir()) == []
