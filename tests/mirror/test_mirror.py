"""The pull-through mirror (``proxy:``) against real upstreams on loopback: another
``hatchway serve`` (open, and with its token service) and Debian's docker-registry."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from hatchway.client.auth import RegistryAuth
from hatchway.client.dockerconfig import Credentials
from tests.support.authkit import ADMIN, ADMIN_PASSWORD
from tests.support.images import make_image
from tests.support.oci import errors, push_blob, push_image, sha256
from tests.support.registries import htpasswd_file, start_registry
from tests.support.server import Server, start_server

SKOPEO = shutil.which("skopeo")
OCI_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def _serve(directory: Path, config: str | None = None, workers: int = 1) -> Server:
    directory.mkdir(parents=True, exist_ok=True)
    return start_server(directory, config=config, workers=workers)


def _mirror_config(upstreams: list[dict[str, object]], **extra: object) -> str:
    return json.dumps({"version": "0.1", "proxy": {"upstreams": upstreams}, **extra})


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Server]:
    server = _serve(tmp_path / "upstream")
    yield server
    server.stop()


@pytest.fixture
def mirror(tmp_path: Path, upstream: Server) -> Iterator[Server]:
    config = _mirror_config(
        [
            {"prefix": "up", "remoteurl": upstream.url, "freshness": "1s", "timeout": "2s"},
            {"prefix": "steady", "remoteurl": upstream.url, "freshness": "1h"},
        ]
    )
    server = _serve(tmp_path / "mirror", config=config)
    yield server
    server.stop()


def _upstream_requests(upstream: Server, method: str, path: str) -> int:
    """Requests the upstream's access log shows for ``method path`` (no query)."""
    pattern = re.compile(rf'"{method} {re.escape(path)}(?:\?[^ ]*)? HTTP/1\.1"')
    return sum(1 for line in upstream.log().splitlines() if pattern.search(line))


def _wait_logged(upstream: Server, method: str, path: str, count: int) -> int:
    # The access log line is written once the response is done; give it a moment.
    deadline = time.monotonic() + 5
    seen = _upstream_requests(upstream, method, path)
    while seen < count and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = _upstream_requests(upstream, method, path)
    return seen


def test_skopeo_copies_an_image_pushed_upstream(
    tmp_path: Path, upstream: Server, mirror: Server
) -> None:
    image = make_image("mirrored", layer_sizes=(300_000, 5000))
    digest = push_image(upstream.client, "lib/app", image, "1")
    assert SKOPEO is not None, "skopeo is not installed (scripts/test installs it)"
    out = tmp_path / "out"
    subprocess.run(
        [
            SKOPEO,
            "copy",
            "--src-tls-verify=false",
            f"docker://{mirror.addr}/up/lib/app:1",
            f"oci:{out}:1",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    for layer in image.layers:
        stored = out / "blobs" / "sha256" / layer.digest.split(":", 1)[1]
        assert stored.read_bytes() == layer.data
    # Now cached: served without the upstream's blobs.
    r = mirror.client.get(f"/v2/up/lib/app/blobs/{image.layers[0].digest}")
    assert r.status_code == 200
    assert r.headers["X-Hatchway-Mirror"] == "hit"
    assert r.content == image.layers[0].data


def test_tag_moved_upstream_is_seen_after_the_interval(upstream: Server, mirror: Server) -> None:
    first = push_image(upstream.client, "lib/moving", make_image("one"), "v")
    r = mirror.client.get("/v2/up/lib/moving/manifests/v", headers={"Accept": OCI_ACCEPT})
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == first
    assert r.headers["X-Hatchway-Mirror"] == "miss"
    second = push_image(upstream.client, "lib/moving", make_image("two"), "v")
    time.sleep(1.2)  # past the 1 s freshness interval
    r = mirror.client.get("/v2/up/lib/moving/manifests/v", headers={"Accept": OCI_ACCEPT})
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == second
    assert mirror.client.get(f"/v2/up/lib/moving/manifests/{first}").status_code == 200


def test_a_tag_is_checked_upstream_at_most_once_per_interval(
    upstream: Server, mirror: Server
) -> None:
    push_image(upstream.client, "lib/steady", make_image("steady"), "v")
    path = "/v2/lib/steady/manifests/v"
    for _ in range(5):
        r = mirror.client.get("/v2/steady/lib/steady/manifests/v")
        assert r.status_code == 200
    assert _wait_logged(upstream, "GET", path, 1) == 1
    assert _upstream_requests(upstream, "HEAD", path) == 0
    # By digest: from the cache, never asking upstream.
    digest = r.headers["Docker-Content-Digest"]
    assert mirror.client.get(f"/v2/steady/lib/steady/manifests/{digest}").status_code == 200
    assert _upstream_requests(upstream, "GET", f"/v2/lib/steady/manifests/{digest}") == 0


def test_upstream_down_serves_cached_as_stale_and_misses_503(
    upstream: Server, mirror: Server
) -> None:
    image = make_image("cached")
    push_image(upstream.client, "lib/cached", image, "1")
    push_image(upstream.client, "lib/never", make_image("never"), "1")
    assert mirror.client.get("/v2/up/lib/cached/manifests/1").status_code == 200
    assert mirror.client.get(f"/v2/up/lib/cached/blobs/{image.layers[0].digest}").status_code == 200
    upstream.stop()
    time.sleep(1.2)  # the tag is due for a check
    r = mirror.client.get("/v2/up/lib/cached/manifests/1")
    assert r.status_code == 200
    assert r.headers["X-Hatchway-Mirror"] == "stale"
    assert r.headers["Warning"] == '110 - "Response is stale"'
    blob = mirror.client.get(f"/v2/up/lib/cached/blobs/{image.layers[0].digest}")
    assert blob.status_code == 200
    assert blob.content == image.layers[0].data
    for path in ("/v2/up/lib/never/manifests/1", f"/v2/up/lib/never/blobs/{sha256(b'x')}"):
        r = mirror.client.get(path)
        assert r.status_code == 503, r.text
        assert errors(r) == ["UNAVAILABLE"]
        assert "unavailable" in r.json()["errors"][0]["message"]


def test_an_upstream_that_never_answers_times_out_into_stale_or_503(tmp_path: Path) -> None:
    """A listening socket that never accepts: connects, then silence."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    config = _mirror_config([{"prefix": "slow", "remoteurl": url, "timeout": "1s"}])
    server = _serve(tmp_path / "mirror", config=config)
    try:
        r = server.client.get("/v2/slow/lib/x/manifests/1")
        assert r.status_code == 503
        assert errors(r) == ["UNAVAILABLE"]
    finally:
        server.stop()
        silent.close()


def _twenty_pulls_one_fetch(upstream: Server, mirror: Server, repo: str) -> None:
    data = bytes(range(256)) * (32 * 1024)  # 8 MiB
    digest = push_blob(upstream.client, f"lib/{repo}", data)

    def pull(_: int) -> tuple[int, bytes]:
        with httpx.Client(base_url=mirror.url, timeout=120) as client:
            r = client.get(f"/v2/up/lib/{repo}/blobs/{digest}")
            return r.status_code, r.content

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(pull, range(20)))
    assert [status for status, _ in results] == [200] * 20
    assert all(body == data for _, body in results)
    path = f"/v2/lib/{repo}/blobs/{digest}"
    assert _wait_logged(upstream, "GET", path, 1) == 1
    time.sleep(0.3)
    assert _upstream_requests(upstream, "GET", path) == 1


def test_twenty_concurrent_pulls_of_a_cold_blob_fetch_it_once(
    upstream: Server, mirror: Server
) -> None:
    _twenty_pulls_one_fetch(upstream, mirror, "big")


def test_workers_share_one_download_through_the_storage_lock(
    tmp_path: Path, upstream: Server
) -> None:
    config = _mirror_config([{"prefix": "up", "remoteurl": upstream.url}])
    mirror = _serve(tmp_path / "mirror2", config=config, workers=2)
    try:
        _twenty_pulls_one_fetch(upstream, mirror, "shared")
        # Nothing of the downloads is left in the repository's uploads.
        uploads = mirror.data / "docker/registry/v2/repositories/up/lib/shared/_uploads"
        assert not uploads.exists() or not any(uploads.iterdir())
    finally:
        mirror.stop()


def test_containerd_ns_parameter_routes_to_the_upstream(upstream: Server, mirror: Server) -> None:
    digest = push_image(upstream.client, "lib/ns", make_image("ns"), "1")
    r = mirror.client.get("/v2/lib/ns/manifests/1", params={"ns": upstream.addr})
    assert r.status_code == 200, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    # Stored under the upstream's prefix here.
    assert mirror.client.get(f"/v2/up/lib/ns/manifests/{digest}").status_code == 200
    # An unknown ns: a local name, not found locally.
    r = mirror.client.get("/v2/lib/ns/manifests/1", params={"ns": "elsewhere.example"})
    assert r.status_code == 404


def test_local_pushes_work_and_pushes_into_a_prefix_are_refused(mirror: Server) -> None:
    image = make_image("local")
    digest = push_image(mirror.client, "team/app", image, "1")
    r = mirror.client.get("/v2/team/app/manifests/1")
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest
    assert "X-Hatchway-Mirror" not in r.headers
    r = mirror.client.post("/v2/up/team/app/blobs/uploads/")
    assert r.status_code == 405
    assert errors(r) == ["UNSUPPORTED"]
    r = mirror.client.put(
        "/v2/up/team/app/manifests/1",
        content=image.manifest.data,
        headers={"Content-Type": OCI_ACCEPT},
    )
    assert r.status_code == 405
    assert errors(r) == ["UNSUPPORTED"]


def test_local_access_rules_decide_who_pulls_from_the_mirror(
    tmp_path: Path, upstream: Server
) -> None:
    push_image(upstream.client, "lib/ruled", make_image("ruled"), "1")
    path = htpasswd_file(tmp_path / "htpasswd", ("alice", "alice-Pw-0123"), ("bob", "bob-Pw-0123"))
    config = _mirror_config(
        [{"prefix": "up", "remoteurl": upstream.url}],
        auth={"htpasswd": {"realm": "mirror", "path": str(path)}},
        access=[{"name": "alice", "repository": "up/*", "action": "pull"}],
    )
    server = _serve(tmp_path / "mirror", config=config)
    try:
        url = "/v2/up/lib/ruled/manifests/1"
        assert server.client.get(url).status_code == 401
        assert server.client.get(url, auth=("bob", "bob-Pw-0123")).status_code in (401, 403)
        assert server.client.get(url, auth=("alice", "alice-Pw-0123")).status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["token", "distribution"])
def test_authenticated_upstreams(tmp_path: Path, kind: str) -> None:
    """Upstream auth: hatchway's token service (the Bearer dance) and distribution 2.8
    with htpasswd (Basic), with the configured credentials."""
    (tmp_path / "upstream").mkdir()
    registry = start_registry(kind, tmp_path / "upstream")
    try:
        repo = registry.ref.split("/", 3)[3].rsplit(":", 1)[0]
        config = _mirror_config(
            [
                {
                    "prefix": "remote",
                    "remoteurl": f"http://{registry.addr}",
                    "username": registry.user[0],
                    "password": registry.user[1],
                }
            ]
        )
        server = _serve(tmp_path / "mirror", config=config)
        try:
            r = server.client.get(f"/v2/remote/{repo}/manifests/1")
            assert r.status_code == 200, r.text
            assert r.headers["Docker-Content-Digest"] == registry.digest
            layers = json.loads(r.content)["layers"]
            for layer in layers:
                blob = server.client.get(f"/v2/remote/{repo}/blobs/{layer['digest']}")
                assert blob.status_code == 200
                assert sha256(blob.content) == layer["digest"]
        finally:
            server.stop()
    finally:
        assert registry.stop is not None
        registry.stop()


def test_a_blob_stored_for_another_repository_is_linked_not_fetched_again(
    upstream: Server, mirror: Server
) -> None:
    data = b"shared layer " * 1000
    digest = push_blob(upstream.client, "lib/one", data)
    push_blob(upstream.client, "lib/two", data)
    assert mirror.client.get(f"/v2/up/lib/one/blobs/{digest}").content == data
    # Stored just after its last byte was sent (on a busy machine, a moment later).
    hexdigest = digest.split(":", 1)[1]
    kept = mirror.data / f"docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"
    deadline = time.monotonic() + 10
    while not kept.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Not linked in lib/three upstream: not served through it here either.
    assert mirror.client.get(f"/v2/up/lib/three/blobs/{digest}").status_code == 404
    r = mirror.client.get(f"/v2/up/lib/two/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert _upstream_requests(upstream, "GET", f"/v2/lib/two/blobs/{digest}") == 0


def test_token_mode_mirror_indexes_what_it_mirrors(tmp_path: Path, upstream: Server) -> None:
    """With the token service (and so the repository index), a mirrored image is pulled
    with a token and lands in the index without complaint."""
    image = make_image("indexed")
    digest = push_image(upstream.client, "lib/indexed", image, "1")
    config = _mirror_config(
        [{"prefix": "up", "remoteurl": upstream.url}], auth={"token": {"realm": None}}
    )
    directory = tmp_path / "mirror"
    directory.mkdir()
    server = start_server(directory, config=config, env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        auth = RegistryAuth(Credentials(ADMIN, ADMIN_PASSWORD))
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as client:
            r = client.get("/v2/up/lib/indexed/manifests/1", headers={"Accept": OCI_ACCEPT})
            assert r.status_code == 200, r.text
            assert r.headers["Docker-Content-Digest"] == digest
            for layer in image.layers:
                assert client.get(f"/v2/up/lib/indexed/blobs/{layer.digest}").content == (
                    layer.data
                )
            r = client.put("/v2/up/lib/indexed/manifests/2", content=image.manifest.data)
            assert r.status_code == 405
        assert "repository index: could not record" not in server.log()
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_tags_are_listed_from_upstream_and_from_the_cache_when_it_is_down(
    upstream: Server, mirror: Server
) -> None:
    image = make_image("tagged")
    for tag in ("a", "b", "c"):
        push_image(upstream.client, "lib/tagged", image, tag)
    r = mirror.client.get("/v2/up/lib/tagged/tags/list")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "up/lib/tagged", "tags": ["a", "b", "c"]}
    r = mirror.client.get("/v2/up/lib/tagged/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/up/lib/tagged/tags/list?n=2&last=b>; rel="next"'
    assert mirror.client.get("/v2/up/lib/untagged/tags/list").status_code == 404
    assert mirror.client.get("/v2/up/lib/tagged/manifests/b").status_code == 200
    upstream.stop()
    r = mirror.client.get("/v2/up/lib/tagged/tags/list")
    assert r.status_code == 200
    assert r.json()["tags"] == ["b"]
    assert r.headers["X-Hatchway-Mirror"] == "stale"
    r = mirror.client.get("/v2/up/lib/uncached/tags/list")
    assert r.status_code == 503
    assert errors(r) == ["UNAVAILABLE"]
