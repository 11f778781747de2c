"""The mirror's state shared through the database: a tag checked upstream by one worker
(or replica) is fresh for the others; ``ttl`` removes cached content not pulled for that
long (``0`` keeps it). Real ``hatchway serve`` processes, a real upstream hatchway."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchway.oci.digest import Digest
from hatchway.registry import layout
from tests.support.images import make_image
from tests.support.oci import push_image
from tests.support.server import Server, start_server
from tests.support.workers import connect, connection_to_other_worker, worker_of

OCI_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "upstream").mkdir()
    server = start_server(tmp_path / "upstream")
    yield server
    server.stop()


def _config(upstreams: list[dict[str, object]]) -> str:
    return json.dumps({"version": "0.1", "proxy": {"upstreams": upstreams}})


def _requests(upstream: Server, method: str, path: str) -> int:
    pattern = re.compile(rf'"{method} {re.escape(path)}(?:\?[^ ]*)? HTTP/1\.1"')
    return sum(1 for line in upstream.log().splitlines() if pattern.search(line))


def _settled(upstream: Server, method: str, path: str, count: int) -> int:
    """The upstream's count of ``method path`` once its access log has caught up."""
    deadline = time.monotonic() + 5
    while _requests(upstream, method, path) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return _requests(upstream, method, path)


def test_a_tag_checked_by_one_worker_is_fresh_for_the_other(
    tmp_path: Path, upstream: Server
) -> None:
    push_image(upstream.client, "lib/app", make_image("shared-check"), "v1")
    (tmp_path / "mirror").mkdir()
    config = _config([{"prefix": "up", "remoteurl": upstream.url, "freshness": "1h"}])
    mirror = start_server(tmp_path / "mirror", config=config, workers=2)
    try:
        first = connect(mirror)
        busy = worker_of(mirror, first)
        assert busy is not None
        second = connection_to_other_worker(mirror, busy)
        for conn, expected in ((first, "miss"), (second, "hit"), (first, "hit")):
            conn.request("GET", "/v2/up/lib/app/manifests/v1", headers={"Accept": OCI_ACCEPT})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            assert response.getheader("X-Hatchway-Mirror") == expected
        path = "/v2/lib/app/manifests/v1"
        assert _settled(upstream, "GET", path, 1) == 1
        # The other worker did not check it again: no HEAD within the interval.
        assert _requests(upstream, "HEAD", path) == 0
        first.close()
        second.close()
    finally:
        mirror.stop()


def test_replicas_on_one_store_and_database_share_tag_checks(
    tmp_path: Path, upstream: Server
) -> None:
    push_image(upstream.client, "lib/rep", make_image("replicas"), "v1")
    config = _config([{"prefix": "up", "remoteurl": upstream.url, "freshness": "1h"}])
    data = tmp_path / "shared-data"
    replicas = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            replicas.append(start_server(tmp_path / name, config=config, data=data))
        results = []
        for replica in (*replicas, *replicas):
            r = replica.client.get("/v2/up/lib/rep/manifests/v1", headers={"Accept": OCI_ACCEPT})
            assert r.status_code == 200
            results.append(r.headers["X-Hatchway-Mirror"])
        assert results == ["miss", "hit", "hit", "hit"]
        path = "/v2/lib/rep/manifests/v1"
        assert _settled(upstream, "GET", path, 1) == 1
        assert _requests(upstream, "HEAD", path) == 0
    finally:
        for replica in replicas:
            replica.stop()


def _cached(mirror: Server, name: str, manifest: str, blob: str) -> dict[str, bool]:
    root = mirror.data
    return {
        "manifest": (
            root / layout.revision_link(name, Digest.parse(manifest)).lstrip("/")
        ).exists(),
        "tag": (root / layout.tag_current(name, "v1").lstrip("/")).exists(),
        "blob": (root / layout.layer_link(name, Digest.parse(blob)).lstrip("/")).exists(),
    }


def test_ttl_removes_what_was_not_pulled_for_that_long(tmp_path: Path, upstream: Server) -> None:
    image = make_image("expiring", layer_sizes=(20_000,))
    manifest = push_image(upstream.client, "lib/exp", image, "v1")
    blob = image.layers[0].digest
    config = _config(
        [
            {"prefix": "short", "remoteurl": upstream.url, "ttl": "2s", "freshness": "1h"},
            {"prefix": "long", "remoteurl": upstream.url, "ttl": "1h"},
            {"prefix": "never", "remoteurl": upstream.url, "ttl": 0},
        ]
    )
    (tmp_path / "mirror").mkdir()
    mirror = start_server(tmp_path / "mirror", config=config, workers=2)
    try:
        for prefix in ("short", "long", "never"):
            assert mirror.client.get(f"/v2/{prefix}/lib/exp/manifests/v1").status_code == 200
            assert mirror.client.get(f"/v2/{prefix}/lib/exp/blobs/{blob}").status_code == 200
            # Stored (the blob is published just after its last byte was sent).
            deadline = time.monotonic() + 10
            while not all(_cached(mirror, f"{prefix}/lib/exp", manifest, blob).values()):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        # The purge pass removes the short-ttl copy (manifest, its tag, the blob's link).
        deadline = time.monotonic() + 60
        while any(_cached(mirror, "short/lib/exp", manifest, blob).values()):
            assert time.monotonic() < deadline, _cached(mirror, "short/lib/exp", manifest, blob)
            time.sleep(0.2)
        # The same pass looked at the others: a 1h ttl and ttl 0 keep them.
        assert all(_cached(mirror, "long/lib/exp", manifest, blob).values())
        assert all(_cached(mirror, "never/lib/exp", manifest, blob).values())
        # The next pull fetches it again from upstream.
        r = mirror.client.get("/v2/short/lib/exp/manifests/v1")
        assert r.status_code == 200
        assert r.headers["X-Hatchway-Mirror"] == "miss"
        # The blob's bytes are still stored (gc frees them): linked again once the
        # upstream confirms it, not downloaded again.
        r = mirror.client.get(f"/v2/short/lib/exp/blobs/{blob}")
        assert r.status_code == 200
        assert r.content == image.layers[0].data
        assert _settled(upstream, "GET", "/v2/lib/exp/manifests/v1", 4) == 4
        assert "Traceback" not in mirror.log()
    finally:
        mirror.stop()
