"""The same blob workload on filesystem storage and on S3 (SeaweedFS on loopback).

Starts ``hatchway serve`` twice (one worker each, no auth): once on a temp directory,
once on a SeaweedFS bucket (tests/support/seaweedfs.py starts ``weed server -s3``). Then,
alternating the order each round:

- push: a 64 MiB blob as docker does it (POST, one streamed PATCH, PUT ?digest=);
- monolithic: one ``POST ?digest=`` with the whole blob (on S3: written once, no copy);
- pull: GET of that blob, read to the end.

Prints the median seconds and MiB/s per storage and the S3/filesystem ratio (the
target: within 1.5x). With ``--big-gib N`` it also pushes an N GiB blob to S3 and prints
the server's peak RSS while it streams in (memory must stay flat, not grow with N).

It also prints, as a same-run reference, a plain aiobotocore multipart upload of the
same bytes to the same SeaweedFS (parts one at a time, and four at once): what the S3
server costs without hatchway; and the CPU seconds the hatchway server and SeaweedFS
spent per S3 push.

    .venv/bin/python bench/s3_bench.py [--rounds 5] [--size-mib 64] [--big-gib 2]
        [--chunk-mib 10]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def push_monolithic(client: httpx.Client, repo: str, seed: bytes, size: int, digest: str) -> float:
    """One ``POST ?digest=`` with the whole blob (digest known up front)."""
    start = time.perf_counter()
    r = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": digest},
        content=blocks(seed, size),
        headers={"Content-Type": "application/octet-stream"},
    )
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children so far (from /proc)."""
    total = 0.0
    pids = [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    pids += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return total


async def _raw_multipart(
    weed: seaweedfs.SeaweedFS, bucket: str, parts: list[bytes], at_once: int
) -> float:
    """A plain aiobotocore multipart upload of ``parts`` (``at_once`` parts in flight):
    what the S3 server itself costs, without hatchway."""
    from aiobotocore.session import get_session

    session = get_session()
    async with session.create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=weed.endpoint,
        aws_access_key_id=seaweedfs.ACCESS_KEY,
        aws_secret_access_key=seaweedfs.SECRET_KEY,
    ) as s3:
        await s3.head_bucket(Bucket=bucket)  # connect before the clock starts
        key = f"raw/{time.time_ns()}"
        start = time.perf_counter()
        upload = await s3.create_multipart_upload(Bucket=bucket, Key=key)
        gate = asyncio.Semaphore(at_once)

        async def send(number: int, body: bytes) -> dict[str, Any]:
            async with gate:
                r = await s3.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload["UploadId"],
                    PartNumber=number,
                    Body=body,
                )
            return {"PartNumber": number, "ETag": r["ETag"]}

        done = await asyncio.gather(*(send(n, b) for n, b in enumerate(parts, 1)))
        await s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": list(done)},  # type: ignore[typeddict-item]
        )
        return time.perf_counter() - start


def raw_multipart(
    weed: seaweedfs.SeaweedFS, bucket: str, seed: bytes, size: int, part: int, at_once: int
) -> float:
    data = b"".join(blocks(seed, size))
    parts = [data[i : i + part] for i in range(0, size, part)]
    return asyncio.run(_raw_multipart(weed, bucket, parts, at_once))


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
    parser.add_argument("--chunk-mib", type=int, default=0, help="storage.s3.chunksize")
    args = parser.parse_args()
    size = args.size_mib * MiB
    quiet = "log:\n  level: error\n  accesslog:\n    disabled: true\n"
    tmp = Path(tempfile.mkdtemp(prefix="hatchway-s3bench-"))
    # Room for several runs in one volume: none is grown in the middle of a timed push.
    weed = seaweedfs.start(volume_size_mb=2048)
    servers: dict[str, Server] = {}
    try:
        (tmp / "fs").mkdir()
        (tmp / "s3").mkdir()
        servers["filesystem"] = start_server(tmp / "fs", config=OPEN_CONFIG + quiet)
        bucket = weed.new_bucket()
        s3_extra = {"chunksize": args.chunk_mib * MiB} if args.chunk_mib else {}
        s3_config = OPEN_CONFIG + weed.config_yaml(bucket) + quiet
        for key, value in s3_extra.items():
            s3_config = s3_config.replace("  s3:\n", f"  s3:\n    {key}: {value}\n", 1)
        servers["s3"] = start_server(tmp / "s3", config=s3_config)
        part = args.chunk_mib * MiB if args.chunk_mib else 10 * MiB
        ops = ("push", "monolithic", "pull")
        times: dict[str, dict[str, list[float]]] = {k: {op: [] for op in ops} for k in servers}
        raw: dict[int, list[float]] = {1: [], 4: []}
        cpu: dict[str, list[float]] = {"hatchway": [], "seaweedfs": []}
        for rnd in range(args.rounds):
            order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
            for kind in order:
                srv = servers[kind]
                seed = f"{kind}-{rnd}".encode()
                digest = digest_of(seed, size)
                before = cpu_seconds(srv.process.pid), cpu_seconds(weed.process.pid)
                times[kind]["push"].append(push(srv.client, "bench/s3", seed, size, digest))
                if kind == "s3":
                    cpu["hatchway"].append(cpu_seconds(srv.process.pid) - before[0])
                    cpu["seaweedfs"].append(cpu_seconds(weed.process.pid) - before[1])
                times[kind]["pull"].append(pull(srv.client, "bench/s3", digest, size))
                seed += b"-mono"
                digest = digest_of(seed, size)
                took = push_monolithic(srv.client, "bench/s3", seed, size, digest)
                times[kind]["monolithic"].append(took)
            for at_once, took in raw.items():
                seed = f"raw-{rnd}-{at_once}".encode()
                took.append(raw_multipart(weed, bucket, seed, size, part, at_once))
        print(f"{args.size_mib} MiB blob, median of {args.rounds} rounds (seconds, MiB/s):")
        for op in ops:
            fs = statistics.median(times["filesystem"][op])
            s3 = statistics.median(times["s3"][op])
            print(
                f"  {op:10} filesystem {fs:6.3f}s {args.size_mib / fs:7.1f} MiB/s   "
                f"s3 {s3:6.3f}s {args.size_mib / s3:7.1f} MiB/s   s3/filesystem {s3 / fs:4.2f}x"
            )
        fs = statistics.median(times["filesystem"]["push"])
        for at_once, took in raw.items():
            t = statistics.median(took)
            print(
                f"  reference: aiobotocore multipart to the same SeaweedFS, {part // MiB} MiB "
                f"parts, {at_once} at once: {t:6.3f}s {args.size_mib / t:7.1f} MiB/s   "
                f"/filesystem push {t / fs:4.2f}x"
            )
        print(
            f"  CPU seconds per S3 push (median): hatchway server "
            f"{statistics.median(cpu['hatchway']):.2f}, SeaweedFS "
            f"{statistics.median(cpu['seaweedfs']):.2f}"
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
