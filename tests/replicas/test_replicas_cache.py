"""Tag resolutions cached per replica on S3 (registry/references.py): a GET by tag reads
no object while the repository's version in PostgreSQL holds, and still never answers
with a tag older than one another replica acknowledged before the GET began."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_gc_race import image_for, push_once
from tests.observability.scrape import scrape
from tests.replicas.support import Cluster, cluster
from tests.support.images import Image
from tests.support.oci import OCI_MANIFEST

pytestmark = pytest.mark.e2e

METRICS = {"http": {"debug": {"prometheus": {"enabled": True}}}}


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path, extra=METRICS) as c:
        yield c


def object_reads(url: str) -> float:
    found = scrape(f"{url}/metrics")
    return sum(
        s.value
        for s in found.find("hatchway_storage_operation_duration_seconds_count")
        if s.labels["driver"] == "s3" and s.labels["operation"] in ("get_content", "stat")
    )


def get_tag(client: httpx.Client, repo: str, tag: str) -> httpx.Response:
    return client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})


def test_gets_by_tag_read_no_object_while_the_repository_is_unchanged(two: Cluster) -> None:
    a, b = two.replicas
    image = image_for("cached")
    push_once(a.client, "cache/app", image, "v1")
    assert get_tag(b.client, "cache/app", "v1").content == image.manifest.data  # fills it
    before = object_reads(b.url)
    for _ in range(50):
        r = get_tag(b.client, "cache/app", "v1")
        assert r.status_code == 200
        assert r.content == image.manifest.data
        head = b.client.head("/v2/cache/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert head.headers["Docker-Content-Digest"] == image.manifest.digest
    assert object_reads(b.url) - before == 0
    # A push through the other replica: the next GET reads storage again, and is right.
    newer = image_for("cached-2")
    push_once(a.client, "cache/app", newer, "v1")
    assert get_tag(b.client, "cache/app", "v1").content == newer.manifest.data
    assert object_reads(b.url) - before > 0
    # Deleting the tag, then the manifest by digest, through the other replica.
    assert a.client.delete("/v2/cache/app/manifests/v1").status_code == 202
    assert get_tag(b.client, "cache/app", "v1").status_code == 404
    push_once(a.client, "cache/app", newer, "v2")
    assert get_tag(b.client, "cache/app", "v2").status_code == 200
    assert a.client.delete(f"/v2/cache/app/manifests/{newer.manifest.digest}").status_code == 202
    assert get_tag(b.client, "cache/app", "v2").status_code == 404


def test_a_get_never_answers_older_than_a_push_acknowledged_before_it(two: Cluster) -> None:
    """One thread pushes a new image to one tag through replica A, 25 times; readers GET
    the tag through B all along. Each GET must answer the image of the last push
    acknowledged before it was sent, or a newer one."""
    a, b = two.replicas
    images: list[Image] = [image_for(f"seq-{n}") for n in range(25)]
    order = {image.manifest.data: n for n, image in enumerate(images)}
    acked = -1
    lock = threading.Lock()
    done = threading.Event()
    stale: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def pusher() -> None:
        nonlocal acked
        try:
            for n, image in enumerate(images):
                push_once(a.client, "cache/seq", image, "latest")
                with lock:
                    acked = n
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        with httpx.Client(base_url=b.url, timeout=60) as client:
            while not done.is_set():
                with lock:
                    floor = acked
                r = get_tag(client, "cache/seq", "latest")
                if floor < 0:
                    continue  # nothing acknowledged yet: a 404 is right
                if r.status_code != 200 or order.get(r.content, -1) < floor:
                    stale.append((floor, order.get(r.content, -1)))

    threads = [threading.Thread(target=pusher)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert stale == []
    assert get_tag(b.client, "cache/seq", "latest").content == images[-1].manifest.data
