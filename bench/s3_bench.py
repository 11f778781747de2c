"""The same blob workload on filesystem storage and on S3 (SeaweedFS on loopback).

Starts ``hatchway serve`` twice (one worker each, no auth): once on a temp directory,
once on a SeaweedFS bucket (tests/support/seaweedfs.py starts ``weed server -s3``). Then,
alternating the order each round:

- push: a 64 MiB blob as docker does it (POST, one streamed PATCH, PUT ?digest=);
- pull: GET of that blob, read to the end.

Prints the median seconds and MiB/s per storage and the S3/filesystem ratio (the
target: within 1.5x). With ``--big-gib N`` it also pushes an N GiB blob to S3 and prints
the server's peak RSS while it streams in (memory must stay flat, not grow with N).

    .venv/bin/python bench/s3_bench.py [--rounds 5] [--size-mib 64] [--big-gib 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import seaweedfs
from tests.support.server import OPEN_CONFIG, Server, start_server

MiB = 1024 * 1024
CHUNK = MiB


def blocks(seed: bytes, size: int) -> Iterator[bytes]:
    """``size`` bytes of cheap, incompressible-enough data, generated as sent."""
    block = hashlib.sha256(seed).digest() * (CHUNK // 32)
    left = size
    n = 0
    while left > 0:
        piece = block[: min(CHUNK, left)]
        yield bytes([n & 0xFF]) + piece[1:]
        left -= len(piece)
        n += 1


def digest_of(seed: bytes, size: int) -> str:
    h = hashlib.sha256()
    for b in blocks(seed, size):
        h.update(b)
    return f"sha256:{h.hexdigest()}"


def push(client: httpx.Client, repo: str, seed: bytes, size: int, digest: str) -> float:
    start = time.perf_counter()
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    r.raise_for_status()
    location = r.headers["Location"]
    r = client.patch(
        location,
        content=blocks(seed, size),
        headers={"Content-Type": "application/octet-stream"},
    )
    r.raise_for_status()
    location = r.headers["Location"]
    sep = "&" if "?" in location else "?"
    r = client.put(f"{location}{sep}digest={digest}", headers={"Content-Length": "0"})
    r.raise_for_status()
    return time.perf_counter() - start


def pull(client: httpx.Client, repo: str, digest: str, size: int) -> float:
    start = time.perf_counter()
    got = 0
    with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as r:
        r.raise_for_status()
        for chunk in r.iter_bytes(CHUNK):
            got += len(chunk)
    assert got == size, (got, size)
    return time.perf_counter() - start


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (the serve supervisor and worker)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    pids += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--big-gib", type=float, default=0)
    args = parser.parse_args()
    size = args.size_mib * MiB
    quiet = "log:\n  level: error\n  accesslog:\n    disabled: true\n"
    tmp = Path(tempfile.mkdtemp(prefix="hatchway-s3bench-"))
    weed = seaweedfs.server()
    servers: dict[str, Server] = {}
    try:
        (tmp / "fs").mkdir()
        (tmp / "s3").mkdir()
        servers["filesystem"] = start_server(tmp / "fs", config=OPEN_CONFIG + quiet)
        s3_config = OPEN_CONFIG + weed.config_yaml(weed.new_bucket()) + quiet
        servers["s3"] = start_server(tmp / "s3", config=s3_config)
        times: dict[str, dict[str, list[float]]] = {k: {"push": [], "pull": []} for k in servers}
        for rnd in range(args.rounds):
            order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
            for kind in order:
                srv = servers[kind]
                seed = f"{kind}-{rnd}".encode()
                digest = digest_of(seed, size)
                times[kind]["push"].append(push(srv.client, "bench/s3", seed, size, digest))
                times[kind]["pull"].append(pull(srv.client, "bench/s3", digest, size))
        print(f"{args.size_mib} MiB blob, median of {args.rounds} rounds (seconds, MiB/s):")
        for op in ("push", "pull"):
            fs = statistics.median(times["filesystem"][op])
            s3 = statistics.median(times["s3"][op])
            print(
                f"  {op:5} filesystem {fs:6.3f}s {args.size_mib / fs:7.1f} MiB/s   "
                f"s3 {s3:6.3f}s {args.size_mib / s3:7.1f} MiB/s   s3/filesystem {s3 / fs:4.2f}x"
            )
        if args.big_gib:
            big = int(args.big_gib * 1024) * MiB
            srv = servers["s3"]
            before = tree_rss(srv.process.pid)
            peak = [before]
            done = threading.Event()

            def watch() -> None:
                while not done.wait(0.05):
                    peak[0] = max(peak[0], tree_rss(srv.process.pid))

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            seed = b"big"
            digest = digest_of(seed, big)
            took = push(srv.client, "bench/big", seed, big, digest)
            done.set()
            watcher.join()
            print(
                f"{args.big_gib:g} GiB push to S3: {took:.1f}s ({big / MiB / took:.0f} MiB/s); "
                f"server RSS before {before / MiB:.0f} MiB, peak {peak[0] / MiB:.0f} MiB "
                f"(+{(peak[0] - before) / MiB:.0f} MiB)"
            )
    finally:
        for srv in servers.values():
            srv.stop()
        weed.stop()


if __name__ == "__main__":
    main()
