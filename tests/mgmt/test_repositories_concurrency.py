"""The repository index under concurrent pushes to two workers: whatever order the
pushes land in, the index ends showing what storage holds."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from tests.metadata.postgres import fresh_schema
from tests.mgmt.repos import ADMIN, PASSWORD, add_user, image, push, registry, start, tags_of
from tests.support.images import Image
from tests.support.oci import push_blob, push_manifest
from tests.support.server import Server

ALICE = ("alice", PASSWORD)
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with ExitStack() as stack:
        dsn = stack.enter_context(fresh_schema()) if request.param == "postgresql" else None
        found = start(tmp_path_factory.mktemp("repos-concurrency"), workers=2, dsn=dsn)
        try:
            add_user(found, "alice")
            yield found
        finally:
            found.stop()


def test_racing_pushes_of_one_tag_end_as_storage_says(srv: Server) -> None:
    repo = "alice/race"
    images = [image(f"race-{i}") for i in range(6)]
    for img in images:
        push(srv, ALICE, repo, img)  # blobs and manifests by digest first

    def retag(round_: int, img: Image) -> None:
        # A new connection each time, so the pushes spread over both workers.
        with registry(srv, ALICE, repo) as client:
            r = push_manifest(client, repo, "latest", img.manifest.data)
            assert r.status_code == 201, r.text
            r = push_manifest(
                client, repo, f"r{round_}-{img.manifest.digest[7:15]}", img.manifest.data
            )
            assert r.status_code == 201, r.text

    with ThreadPoolExecutor(8) as pool:
        for _ in pool.map(
            lambda job: retag(*job),
            [(round_, img) for round_ in range(4) for img in images],
        ):
            pass
    with registry(srv, ALICE, repo) as client:
        stored = client.head(f"/v2/{repo}/manifests/latest").headers["Docker-Content-Digest"]
        listed = client.get(f"/v2/{repo}/tags/list").json()["tags"]
    body = tags_of(srv, repo, ADMIN, n=1000)
    indexed = {t["name"]: t["digest"] for t in body["tags"]}
    assert indexed["latest"] == stored
    assert sorted(indexed) == sorted(listed)
    assert len(indexed) == 1 + 4 * len(images)
    assert body["repository"]["tags"] == len(indexed)
    assert body["repository"]["manifests"] == len(images)


def test_many_repositories_pushed_at_once(srv: Server) -> None:
    img = image("many")

    def one(n: int) -> None:
        repo = f"alice/many{n}"
        with registry(srv, ALICE, repo) as client:
            for b in (img.config, *img.layers):
                push_blob(client, repo, b.data)
            r = push_manifest(client, repo, "1", img.manifest.data)
            assert r.status_code == 201, r.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(24)))
    r = srv.client.get("/api/v1/repositories", params={"q": "alice/many", "n": 100}, auth=ALICE)
    assert r.status_code == 200, r.text
    found = r.json()["repositories"]
    assert sorted(repo["name"] for repo in found) == sorted(f"alice/many{n}" for n in range(24))
    assert {repo["tags"] for repo in found} == {1}
