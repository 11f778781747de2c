"""The pull-through mirror: a blob pulled cold (miss: fetched from the upstream while
streamed), warm (hit: from the mirror's store) and, for scale, a local blob of the same
size from the same server, and the same blob straight from the upstream.

Two ``hatchway serve`` on 127.0.0.1 (1 worker each, access log off): the upstream, and
the mirror with ``proxy: {upstreams: [{prefix: up, ...}]}``. Each round pulls a new
random blob of ``--size`` MiB. Prints MiB/s per round, the means, and the ratios
hit/local (target: 1, "a cached mirror pull as fast as a local pull") and miss/upstream.

    .venv/bin/python bench/mirror_bench.py [--size 64] [--rounds 4]
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
from benchkit import HATCHWAY_OPEN_CONFIG, OCTET, Server, sha, start_hatchway, wait_ready


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


async def run(size: int, rounds: int, up: Server, mirror: Server) -> None:
    results: dict[str, list[float]] = {"miss": [], "hit": [], "local": [], "upstream": []}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await wait_ready(up, session)
        await wait_ready(mirror, session)
        for round_ in range(rounds):
            data = os.urandom(size << 20)
            digest = await push(session, up, "lib/app", data)
            await push(session, mirror, "local/app", data[::-1])
            local = sha(data[::-1])
            figures = {
                "miss": await pull(session, f"{mirror.base}/v2/up/lib/app/blobs/{digest}"),
                "hit": await pull(session, f"{mirror.base}/v2/up/lib/app/blobs/{digest}"),
                "local": await pull(session, f"{mirror.base}/v2/local/app/blobs/{local}"),
                "upstream": await pull(session, f"{up.base}/v2/lib/app/blobs/{digest}"),
            }
            for key, value in figures.items():
                results[key].append(value)
            print(
                f"round {round_}: " + "  ".join(f"{k} {v:8.1f} MiB/s" for k, v in figures.items())
            )
    means = {k: statistics.mean(v) for k, v in results.items()}
    print("mean:    " + "  ".join(f"{k} {v:8.1f} MiB/s" for k, v in means.items()))
    print(
        f"hit/local {means['hit'] / means['local']:.2f}   miss/upstream "
        f"{means['miss'] / means['upstream']:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64, help="blob size in MiB")
    parser.add_argument("--rounds", type=int, default=4)
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
        asyncio.run(run(args.size, args.rounds, up, mirror))
    finally:
        for srv in (mirror, up):
            if srv is not None:
                srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
