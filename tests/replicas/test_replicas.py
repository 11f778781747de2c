"""Replicas sharing one bucket and one database behave as one registry: an upload begun
on one continues on the other, a tag pushed through one is seen through the other at
once, skopeo pushes and pulls through nginx round robin, a replica killed mid-push
loses nothing acknowledged, and ``hatchway gc`` run beside both keeps every acknowledged
image whole."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_gc_race import Refused, image_for, push_once
from tests.e2e.test_skopeo import Skopeo
from tests.replicas.support import Cluster, cluster
from tests.support.images import Image, make_image, write_oci_layout
from tests.support.oci import OCI_MANIFEST, sha256
from tests.support.server import HATCHWAY

pytestmark = pytest.mark.e2e


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path) as c:
        yield c


def test_an_upload_begun_on_one_replica_continues_on_the_other(two: Cluster) -> None:
    a, b = two.replicas
    data = os.urandom(300_000)
    digest = sha256(data)
    r = a.client.post("/v2/rep/app/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202, r.text
    r = a.client.patch(
        r.headers["Location"],
        content=data[:100_000],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 202, r.text
    # B has never seen this session: its state is in the bucket, not in A's memory.
    r = b.client.patch(
        r.headers["Location"],
        content=data[100_000:250_000],
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"100000-{250_000 - 1}",
        },
    )
    assert r.status_code == 202, r.text
    assert r.headers["Range"] == f"0-{250_000 - 1}"
    r = b.client.put(
        r.headers["Location"],
        params={"digest": digest},
        content=data[250_000:],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    for replica in (a, b):
        got = replica.client.get(f"/v2/rep/app/blobs/{digest}")
        assert got.status_code == 200
        assert got.content == data
    # A session id alone does not move it to another repository.
    r = a.client.post("/v2/rep/app/blobs/uploads/", headers={"Content-Length": "0"})
    moved = r.headers["Location"].replace("/rep/app/", "/rep/other/")
    assert b.client.patch(moved, content=b"x").status_code == 404


def test_a_tag_pushed_through_one_is_seen_through_the_other_at_once(two: Cluster) -> None:
    a, b = two.replicas
    for n in range(3):
        image = image_for(f"tag-{n}")
        push_once(a.client, "rep/tags", image, "latest")
        r = b.client.get("/v2/rep/tags/manifests/latest", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200, r.text
        assert r.content == image.manifest.data
    r = b.client.delete(f"/v2/rep/tags/manifests/{image.manifest.digest}")
    assert r.status_code == 202, r.text
    assert a.client.get("/v2/rep/tags/manifests/latest").status_code == 404


def test_skopeo_pushes_and_pulls_through_the_load_balancer(two: Cluster, tmp_path: Path) -> None:
    skopeo = Skopeo(tmp_path / "skopeo-home")
    image = make_image("replicas", layer_sizes=(3_000_000, 4096, 70))
    src = tmp_path / "src"
    write_oci_layout(src, image, tag="1.0")
    ref = f"docker://{two.lb_addr}/rep/skopeo:1.0"
    skopeo.run("copy", "--dest-tls-verify=false", f"oci:{src}:1.0", ref)
    out = tmp_path / "out"
    skopeo.run("copy", "--src-tls-verify=false", ref, f"oci:{out}:1.0")
    for b in [*image.layers, image.config]:
        assert (out / "blobs" / "sha256" / b.digest.split(":", 1)[1]).read_bytes() == b.data
    # Both replicas took part (round robin, no affinity).
    for replica in two.replicas:
        assert "/v2/rep/skopeo/" in replica.log()


# -- pushes under failure and gc ---------------------------------------------------------


def push_retrying(url: str, repo: str, image: Image, tag: str, attempts: int = 60) -> None:
    """Push until acknowledged, as a retrying client does: a replica dying under a
    request, or gc refusing a blob it raced, means push again."""
    for _ in range(attempts):
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                push_once(client, repo, image, tag)
        except (Refused, httpx.TransportError, AssertionError):
            time.sleep(0.05)
        else:
            return
    raise AssertionError(f"{repo}:{tag} was never acknowledged")


def pulls_whole(url: str, repo: str, image: Image, tag: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        r = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200, (repo, tag, r.text)
        assert r.content == image.manifest.data
        for b in (image.config, *image.layers):
            got = client.get(f"/v2/{repo}/blobs/{b.digest}")
            assert got.status_code == 200, (repo, tag, b.digest, got.text)
            assert sha256(got.content) == b.digest


def run_pushers(
    url: str,
    count: int,
    rounds: int,
    acked: dict[tuple[str, str], Image],
    errors: list[BaseException],
) -> list[threading.Thread]:
    def pusher(index: int) -> None:
        try:
            for n in range(rounds):
                repo, tag = f"rep/p{index}", f"t{n}"
                image = image_for(f"{os.getpid()}-{index}-{n}")
                push_retrying(url, repo, image, tag)
                acked[(repo, tag)] = image
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pusher, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_killing_a_replica_mid_push_loses_nothing_acknowledged(two: Cluster) -> None:
    acked: dict[tuple[str, str], Image] = {}
    errors: list[BaseException] = []
    threads = run_pushers(two.lb, 3, 6, acked, errors)
    deadline = time.monotonic() + 120
    while len(acked) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = two.replicas[1]
    os.killpg(victim.process.pid, signal.SIGKILL)  # the server and its worker, at once
    victim.process.wait()
    for thread in threads:
        thread.join(timeout=600)
    if errors:
        raise errors[0]
    assert len(acked) == 3 * 6
    for (repo, tag), image in acked.items():
        pulls_whole(two.lb, repo, image, tag)
    # A replacement replica (new local directory) serves all of it too.
    fresh = two.start_replica("r2")
    for (repo, tag), image in acked.items():
        pulls_whole(fresh.url, repo, image, tag)


def test_gc_beside_both_replicas_keeps_everything_acknowledged(two: Cluster) -> None:
    acked: dict[tuple[str, str], Image] = {}
    errors: list[BaseException] = []
    stop = threading.Event()
    runs: list[str] = []
    config = two.config_file()
    gc_data = two.tmp / "gc-local"

    def gc_loop() -> None:
        try:
            while not stop.is_set():
                result = subprocess.run(
                    [HATCHWAY, "gc", "--config", str(config), "--data", str(gc_data), "--grace=0s"],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                assert result.returncode == 0, result.stdout + result.stderr
                runs.append(result.stdout)
        except BaseException as exc:
            errors.append(exc)

    collector = threading.Thread(target=gc_loop, daemon=True)
    collector.start()
    threads = run_pushers(two.lb, 3, 6, acked, errors)
    for thread in threads:
        thread.join(timeout=600)
    stop.set()
    collector.join(timeout=120)
    if errors:
        raise errors[0]
    assert runs
    assert len(acked) == 3 * 6
    for (repo, tag), image in acked.items():
        for replica in two.replicas:
            pulls_whole(replica.url, repo, image, tag)
