"""The pull-through mirror: a blob pulled cold (miss: fetched from the upstream while
streamed), warm (hit: from the mirror's store) and, for scale, a local blob of the same
size from the same server, and the same blob straight from the upstream.

Two ``hatchway serve`` on 127.0.0.1 (1 worker each, access log off): the upstream, and
the mirror with ``proxy: {upstreams: [{prefix: up, ...}]}``. Each round pulls a new
random blob of ``--size`` MiB. Prints MiB/s per round, the means, and the ratios
hit/local (target: 1, "a cached mirror pull as fast as a local pull") and miss/upstream.

Then the small requests a pull is mostly made of: ``--requests`` GETs (8 at a time) of a
manifest by tag and of a 1 KiB blob, from the mirror's cache (hit) and from a local
repository of the same server (a name of the same length and depth: routing and path
checks cost by the component), alternating local and hit four times each. Prints the server's
CPU time per request (utime + stime of its process tree from /proc: steadier than wall
time on a shared machine) and the rate.

    .venv/bin/python bench/mirror_bench.py [--size 64] [--rounds 4] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from benchkit import (
    CONFIG,
    HATCHWAY_OPEN_CONFIG,
    LAYER,
    OCI_MANIFEST,
    OCTET,
    Server,
    manifest,
    sha,
    start_hatchway,
    tree_pids,
    wait_ready,
)

CONCURRENCY = 8
ALTERNATIONS = 4  # local, hit, local, hit, ...: load that drifts during the run hits both


def cpu_seconds(root: int | None) -> float:
    """utime + stime of the server's process tree."""
    total = 0
    for pid in tree_pids(root) if root is not None else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def push(session: aiohttp.ClientSession, srv: Server, repo: str, data: bytes) -> str:
    digest = sha(data)
    url = f"{srv.base}/v2/{repo}/blobs/uploads/?digest={digest}"
    async with session.post(url, data=data, headers={"Content-Type": OCTET}) as r:
        assert r.status == 201, await r.text()
    return digest


async def pull(session: aiohttp.ClientSession, url: str) -> float:
    """MiB/s of one GET, the body read and dropped."""
    started = time.perf_counter()
    total = 0
    async with session.get(url) as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_chunked(1 << 20):
            total += len(chunk)
    return total / (1 << 20) / (time.perf_counter() - started)


async def push_image(session: aiohttp.ClientSession, srv: Server, repo: str) -> None:
    await push(session, srv, repo, CONFIG)
    await push(session, srv, repo, LAYER)
    url = f"{srv.base}/v2/{repo}/manifests/v"
    headers = {"Content-Type": OCI_MANIFEST}
    async with session.put(url, data=manifest("mirror-bench"), headers=headers) as r:
        assert r.status == 201, await r.text()


async def small_gets(
    session: aiohttp.ClientSession, srv: Server, url: str, n: int
) -> tuple[float, float]:
    """(server CPU ms per request, requests per second) for ``n`` GETs of ``url``."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with session.get(url, headers={"Accept": OCI_MANIFEST}) as r:
                assert r.status == 200, await r.text()
                await r.read()

    cpu, started = cpu_seconds(srv.pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return (cpu_seconds(srv.pid) - cpu) * 1000 / n, n / elapsed


async def run_small(requests: int, up: Server, mirror: Server) -> None:
    async with aiohttp.ClientSession() as session:
        await wait_ready(up, session)
        await wait_ready(mirror, session)
        await push_image(session, up, "lib/small")
        await push_image(session, mirror, "lo/lib/small")
        layer = sha(LAYER)
        paths = {
            "manifest": ("up/lib/small/manifests/v", "lo/lib/small/manifests/v"),
            "blob": (f"up/lib/small/blobs/{layer}", f"lo/lib/small/blobs/{layer}"),
        }
        for hit, _ in paths.values():  # cache it (miss)
            async with session.get(f"{mirror.base}/v2/{hit}") as r:
                assert r.status == 200, await r.text()
        for kind, (hit, local) in paths.items():
            figures = {}
            for label, path in (("local", local), ("hit", hit)) * ALTERNATIONS:
                figures.setdefault(label, []).append(
                    await small_gets(session, mirror, f"{mirror.base}/v2/{path}", requests)
                )
            cpu = {k: statistics.mean(c for c, _ in v) for k, v in figures.items()}
            rate = {k: statistics.mean(r for _, r in v) for k, v in figures.items()}
            print(
                f"{kind:8} GET: hit {cpu['hit']:.3f} ms CPU, {rate['hit']:7.0f} req/s   "
                f"local {cpu['local']:.3f} ms CPU, {rate['local']:7.0f} req/s   "
                f"CPU hit/local {cpu['hit'] / cpu['local']:.2f}"
            )


async def settled(session: aiohttp.ClientSession, url: str) -> None:
    """Until the mirror serves ``url`` from its store (HEAD says hit)."""
    for _ in range(600):
        async with session.head(url) as r:
            if r.headers.get("X-Hatchway-Mirror") == "hit":
                return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} never settled in the mirror's cache")


async def run(size: int, rounds: int, up: Server, mirror: Server) -> None:
    results: dict[str, list[float]] = {"miss": [], "hit": [], "local": [], "upstream": []}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await wait_ready(up, session)
        await wait_ready(mirror, session)
        for round_ in range(rounds):
            data = os.urandom(size << 20)
            digest = await push(session, up, "lib/app", data)
            await push(session, mirror, "lo/lib/app", data[::-1])
            local = sha(data[::-1])
            blob = f"{mirror.base}/v2/up/lib/app/blobs/{digest}"
            miss = await pull(session, blob)
            # The miss's last byte goes out once the digest is checked; the blob is then
            # made durable and published. A pull meanwhile follows the file (a copy, not
            # sendfile): wait for the cache to settle, which is what "cached" means.
            await settled(session, blob)
            # Whichever pull comes right after the miss shares the machine with the
            # miss's write-back: flush it first, and take hit first in even rounds,
            # local first in odd ones.
            await asyncio.to_thread(os.sync)
            urls = {"hit": blob, "local": f"{mirror.base}/v2/lo/lib/app/blobs/{local}"}
            order = ("hit", "local") if round_ % 2 == 0 else ("local", "hit")
            figures = {"miss": miss}
            for key in order:
                figures[key] = await pull(session, urls[key])
            figures["upstream"] = await pull(session, f"{up.base}/v2/lib/app/blobs/{digest}")
            for key, value in figures.items():
                results[key].append(value)
            print(f"round {round_}: " + "  ".join(f"{k} {figures[k]:8.1f} MiB/s" for k in results))
    means = {k: statistics.mean(v) for k, v in results.items()}
    print("mean:    " + "  ".join(f"{k} {v:8.1f} MiB/s" for k, v in means.items()))
    per_round = statistics.median(
        h / lo for h, lo in zip(results["hit"], results["local"], strict=True)
    )
    print(f"median of the rounds' hit/local {per_round:.2f}")
    print(
        f"hit/local {means['hit'] / means['local']:.2f}   miss/upstream "
        f"{means['miss'] / means['upstream']:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64, help="blob size in MiB")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3000, help="small GETs per figure")
    args = parser.parse_args()
    binary = str(Path(sys.executable).with_name("hatchway"))
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    up = mirror = None
    try:
        up = start_hatchway(binary, tmp / "up", 1)
        config = {
            **HATCHWAY_OPEN_CONFIG,
            "proxy": {"upstreams": [{"prefix": "up", "remoteurl": up.base}]},
        }
        mirror = start_hatchway(binary, tmp / "mirror", 1, config)
        if args.rounds:
            asyncio.run(run(args.size, args.rounds, up, mirror))
        if args.requests:
            asyncio.run(run_small(args.requests, up, mirror))
    finally:
        for srv in (mirror, up):
            if srv is not None:
                srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
