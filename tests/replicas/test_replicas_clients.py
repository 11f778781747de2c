"""Real clients through nginx while a replica is killed: skopeo (``--retry-times``) and
``hatchway push`` (resumable chunks, ``--retries``) copy several multi-layer images
through the load balancer (round robin, no affinity); one replica gets ``kill -9`` in the
middle; every client finishes on its own retries, and every image a client acknowledged
pulls whole, with the digest the client reported, from the surviving replica and from the
killed one restarted on its old local directory."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.replicas.support import Cluster, cluster
from tests.support.authkit import Skopeo
from tests.support.images import Image, blob, layer_tar_gz, write_oci_layout
from tests.support.oci import OCI_MANIFEST, sha256
from tests.support.server import HATCHWAY, Server

pytestmark = pytest.mark.e2e

# Incompressible layers, so a push lasts long enough to be cut in the middle.
LAYERS = (2_000_000, 900_000, 300_000, 4096)
SKOPEO_PUSHERS, HATCHWAY_PUSHERS, ROUNDS = 2, 2, 3
CLIENT_TIMEOUT = 900.0


def noisy_image(seed: str, sizes: tuple[int, ...] = LAYERS) -> Image:
    layers = [
        blob(
            layer_tar_gz({f"{seed}-{i}": os.urandom(size)}),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
        for i, size in enumerate(sizes)
    ]
    config = blob(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Env": [f"SEED={seed}"]},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [sha256(gzip.decompress(layer.data)) for layer in layers],
                },
            }
        ).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = blob(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
            }
        ).encode(),
        OCI_MANIFEST,
    )
    return Image(config, layers, manifest)


@dataclass
class Push:
    client: str
    repo: str
    tag: str
    image: Image
    reported: str  # the manifest digest the client printed / wrote


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path) as c:
        yield c


def skopeo_push(skopeo: Skopeo, layout: Path, ref: str, digestfile: Path) -> str:
    cmd = [
        "skopeo",
        "--policy",
        str(skopeo.home / "policy.json"),
        "--registries.d",
        str(skopeo.home / "registries.d"),
        "copy",
        "--retry-times=8",
        "--dest-tls-verify=false",
        f"--digestfile={digestfile}",
        f"oci:{layout}:v",
        ref,
    ]
    # skopeo 1.9's --retry-times (containers/common 0.50) retries network errors and
    # registry error codes, not an HTTP 5xx: a PATCH in flight on the killed replica
    # gets nginx's 502 (nginx never resends a PATCH) and ends the copy. A pipeline runs
    # the step again; so does this pusher, at most twice, only for that.
    for _ in range(3):
        result = subprocess.run(
            cmd, capture_output=True, env=skopeo.env, timeout=CLIENT_TIMEOUT, check=False
        )
        stderr = result.stderr.decode(errors="replace")
        if result.returncode == 0 or not re.search(r"HTTP status: 50[234]", stderr):
            break
    assert result.returncode == 0, ("skopeo", ref, stderr)
    return digestfile.read_text().strip()


def hatchway_push(home: Path, layout: Path, ref: str) -> str:
    env = {**os.environ, "HOME": str(home), "DOCKER_CONFIG": str(home / ".docker")}
    cmd = [HATCHWAY, "push", f"{layout}:v", ref, "--insecure", "--chunk-size=1M", "--retries=12"]
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=CLIENT_TIMEOUT, check=False
    )
    assert result.returncode == 0, ("hatchway push", ref, result.stderr)
    return result.stdout.strip()


def check_pull(server: Server, push: Push) -> None:
    """The manifest by tag is the one pushed, under the digest the client reported, and
    every blob comes back with its digest."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.get(f"/v2/{push.repo}/manifests/{push.tag}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200, (server.url, push.repo, push.tag, r.text)
        assert r.headers["Docker-Content-Digest"] == push.reported
        assert sha256(r.content) == push.reported == push.image.manifest.digest
        for b in (push.image.config, *push.image.layers):
            got = client.get(f"/v2/{push.repo}/blobs/{b.digest}")
            assert got.status_code == 200, (server.url, push.repo, b.digest, got.text)
            assert hashlib.sha256(got.content).hexdigest() == b.digest.split(":", 1)[1]


def test_real_clients_finish_through_nginx_when_a_replica_is_killed(
    two: Cluster, tmp_path: Path
) -> None:
    acked: list[Push] = []
    errors: list[BaseException] = []
    jobs: list[tuple[str, int]] = [("skopeo", i) for i in range(SKOPEO_PUSHERS)]
    jobs += [("hatchway", i) for i in range(HATCHWAY_PUSHERS)]
    layouts: dict[tuple[str, int, int], tuple[Path, Image]] = {}
    for client, index in jobs:
        for n in range(ROUNDS):
            image = noisy_image(f"{client}-{index}-{n}")
            layout = tmp_path / "layouts" / f"{client}-{index}-{n}"
            write_oci_layout(layout, image, tag="v")
            layouts[(client, index, n)] = (layout, image)

    def pusher(client: str, index: int) -> None:
        home = tmp_path / "homes" / f"{client}-{index}"
        home.mkdir(parents=True)
        skopeo = Skopeo(home) if client == "skopeo" else None
        try:
            for n in range(ROUNDS):
                layout, image = layouts[(client, index, n)]
                repo, tag = f"clients/{client}{index}", f"r{n}"
                ref = f"{two.lb_addr}/{repo}:{tag}"
                if skopeo is not None:
                    reported = skopeo_push(skopeo, layout, f"docker://{ref}", home / f"d{n}")
                else:
                    reported = hatchway_push(home, layout, ref)
                acked.append(Push(client, repo, tag, image, reported))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pusher, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    # Kill once every client has pushed something and more is in flight.
    deadline = time.monotonic() + CLIENT_TIMEOUT
    while {p.client for p in acked} != {"skopeo", "hatchway"} and time.monotonic() < deadline:
        assert not errors, errors
        time.sleep(0.02)
    survivor, victim = two.replicas
    assert "/v2/clients/" in victim.log()  # it was taking its share before it died
    os.killpg(victim.process.pid, signal.SIGKILL)  # the server and its worker at once
    victim.process.wait()
    for thread in threads:
        thread.join(timeout=CLIENT_TIMEOUT)
    if errors:
        raise errors[0]
    assert len(acked) == len(jobs) * ROUNDS
    assert two.proxy is not None
    cut = (two.proxy.directory / "error.log").read_text(errors="replace")
    assert "upstream" in cut  # the balancer met the dead replica and moved on
    print(cut)  # which requests were cut in the middle ("prematurely closed")

    for push in acked:
        check_pull(survivor, push)
    # The killed replica comes back on its old local directory and serves all of it.
    restarted = two.restart_replica(victim)
    for push in acked:
        check_pull(restarted, push)
    # And a real client pulls through the load balancer, byte for byte.
    skopeo = Skopeo(tmp_path / "homes" / "puller")
    (tmp_path / "pulled").mkdir()
    for push in acked[-2:]:
        out = tmp_path / "pulled" / f"{push.client}-{push.tag}"
        skopeo.pull(f"docker://{two.lb_addr}/{push.repo}:{push.tag}", out, "v")
        for b in (push.image.config, *push.image.layers):
            assert (out / "blobs" / "sha256" / b.digest.split(":", 1)[1]).read_bytes() == b.data
