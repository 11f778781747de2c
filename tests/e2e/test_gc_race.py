"""``hatchway gc --grace 0s`` in a loop while clients push to two workers.

gc may refuse a push it raced (MANIFEST_BLOB_UNKNOWN: the client pushes again), but
never may an image the registry acknowledged become unpullable, and nothing may 500.
Two collectors run at once: the CLI in a loop, and the same code in this process in a
faster loop, so far more pushes meet a gc than the CLI's start-up time allows alone.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hatchway.registry.gc import collect
from hatchway.registry.service import Registry
from hatchway.storage.filesystem import FilesystemDriver
from tests.support.images import Blob, Image, blob, make_image
from tests.support.oci import OCI_MANIFEST, manifest_for, sha256
from tests.support.server import HATCHWAY, Server, start_server

PUSHERS = 3
ROUNDS = 8
ATTEMPTS = 40
BASE = blob(os.urandom(200_000), "application/vnd.oci.image.layer.v1.tar+gzip")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, workers=2)
    yield srv
    srv.stop()


class Refused(Exception):
    """gc took a blob of this push first; the push was not acknowledged."""


def upload(client: httpx.Client, repo: str, b: Blob) -> None:
    r = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": b.digest},
        content=b.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if r.status_code == 400 and "garbage-collected" in r.text:
        raise Refused(r.text)
    assert r.status_code == 201, r.text


def push_once(client: httpx.Client, repo: str, image: Image, tag: str) -> None:
    for b in (image.config, *image.layers):
        upload(client, repo, b)
    r = client.put(
        f"/v2/{repo}/manifests/{tag}",
        content=image.manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
    )
    if r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN":
        raise Refused(r.text)
    assert r.status_code == 201, r.text


def push(server: Server, repo: str, image: Image, tag: str) -> int:
    """Push until acknowledged, as a client does; returns how many times gc refused it."""
    for refused in range(ATTEMPTS):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            try:
                push_once(client, repo, image, tag)
            except Refused:
                continue
            return refused
    raise AssertionError(f"{repo}:{tag} refused {ATTEMPTS} times")


def pulls_fully(server: Server, repo: str, image: Image, tag: str) -> None:
    # A new connection each time, so both workers answer (one of them cached nothing).
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200, (repo, tag, r.text)
        assert r.content == image.manifest.data
    for b in (image.config, *image.layers):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            r = client.get(f"/v2/{repo}/blobs/{b.digest}")
            assert r.status_code == 200, (repo, tag, b.digest, r.text)
            assert sha256(r.content) == b.digest


def image_for(seed: str) -> Image:
    own = make_image(seed, layer_sizes=(2000, 30_000))
    layers = [BASE, *own.layers]
    return Image(own.config, layers, manifest_for(own.config, layers))


def pusher(server: Server, index: int, acked: dict[tuple[str, str], Image]) -> int:
    """Push, push again, delete and push back; every acknowledged image must pull."""
    rng = random.Random(index)
    repo = f"race/p{index}"
    mine: dict[str, Image] = {}
    refusals = 0
    for n in range(ROUNDS):
        action = rng.choice(["new", "new", "again", "delete-and-back"]) if mine else "new"
        if action == "new":
            tag, image = f"t{n}", image_for(f"{index}-{n}")
        else:
            tag = rng.choice(sorted(mine))
            image = mine[tag]
        if action == "delete-and-back":
            with httpx.Client(base_url=server.url, timeout=60) as client:
                r = client.delete(f"/v2/{repo}/manifests/{image.manifest.digest}")
                assert r.status_code == 202, r.text
            acked.pop((repo, tag), None)
        refusals += push(server, repo, image, tag)
        mine[tag] = image
        acked[(repo, tag)] = image
        pulls_fully(server, repo, image, tag)
    return refusals


def gc_loop_cli(server: Server, stop: threading.Event, runs: list[str]) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(server.data.parent)}
    while not stop.is_set():
        result = subprocess.run(
            [HATCHWAY, "gc", "--data", str(server.data), "--grace", "0s"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        runs.append(result.stdout)


def gc_loop_here(server: Server, stop: threading.Event, runs: list[str]) -> None:
    registry = Registry(FilesystemDriver(str(server.data)))
    rng = random.Random(99)

    async def loop() -> None:
        while not stop.is_set():
            report = await collect(registry, grace=0)
            runs.append(f"deleted {len(report.blobs_deleted)} blobs")
            await asyncio.sleep(rng.uniform(0, 0.3))

    asyncio.run(loop())


def test_acknowledged_pushes_survive_gc_loops(server: Server) -> None:
    acked: dict[tuple[str, str], Image] = {}
    stop = threading.Event()
    cli_runs: list[str] = []
    here_runs: list[str] = []
    errors: list[BaseException] = []

    def guarded(fn: object, *args: object) -> threading.Thread:
        def run() -> None:
            try:
                fn(*args)  # type: ignore[operator]
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    collectors = [
        guarded(gc_loop_cli, server, stop, cli_runs),
        guarded(gc_loop_here, server, stop, here_runs),
    ]
    refusals: list[int] = []
    pushers = [
        guarded(lambda i: refusals.append(pusher(server, i, acked)), i) for i in range(PUSHERS)
    ]
    for thread in pushers:
        thread.join(timeout=600)
    stop.set()
    for thread in collectors:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert len(refusals) == PUSHERS
    assert len(acked) >= PUSHERS * 3
    # The race was real: both collectors ran alongside, and swept something.
    assert cli_runs
    assert here_runs
    assert any(" 0 blobs" not in run for run in cli_runs + here_runs)
    for (repo, tag), image in acked.items():
        pulls_fully(server, repo, image, tag)
    # gc with nothing in flight keeps every acknowledged image whole.
    registry = Registry(FilesystemDriver(str(server.data)))
    asyncio.run(collect(registry, grace=0))
    for (repo, tag), image in acked.items():
        pulls_fully(server, repo, image, tag)
