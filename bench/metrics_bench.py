"""What metrics cost: worker CPU per manifest GET with ``http.debug.prometheus`` on and off.

Two ``hatchway serve`` (2 workers each, access log off) take turns under the same wrk
load, several rounds, in one run; the figure is the workers' CPU time (utime + stime from
/proc) divided by the requests answered, which a busy shared machine disturbs far less
than a rate does. Prints each round, the means and the on/off ratio.

    .venv/bin/python bench/metrics_bench.py [--rounds 4] [--duration 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp
from benchkit import (
    CONFIG,
    HATCHWAY_OPEN_CONFIG,
    LAYER,
    OCI_MANIFEST,
    OCTET,
    Server,
    Spec,
    manifest,
    run_wrk,
    sha,
    start_hatchway,
    tree_pids,
    wait_ready,
)

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


async def seed(srv: Server) -> None:
    async with aiohttp.ClientSession() as session:
        await wait_ready(srv, session)
        for blob in (CONFIG, LAYER):
            async with session.post(
                f"{srv.base}/v2/bench/app/blobs/uploads/?digest={sha(blob)}",
                data=blob,
                headers={"Content-Type": OCTET},
            ) as r:
                assert r.status == 201, await r.text()
        async with session.put(
            f"{srv.base}/v2/bench/app/manifests/v1",
            data=manifest("1"),
            headers={"Content-Type": OCI_MANIFEST},
        ) as r:
            assert r.status == 201, await r.text()


def config(enabled: bool) -> dict[str, object]:
    doc = dict(HATCHWAY_OPEN_CONFIG)
    if enabled:
        doc["http"] = {"debug": {"prometheus": {"enabled": True}}}
    return doc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    binary = str(Path(sys.executable).with_name("hatchway"))
    tmp = Path(tempfile.mkdtemp(prefix="hatchway-metrics-bench-"))
    results: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for round_ in range(args.rounds):
            for name in ("off", "on"):
                srv = start_hatchway(binary, tmp / f"{name}-{round_}", 2, config(name == "on"))
                try:
                    asyncio.run(seed(srv))
                    assert srv.pid is not None
                    workers = [p for p in tree_pids(srv.pid) if p != srv.pid]
                    url = f"{srv.base}/v2/bench/app/manifests/v1"
                    spec = Spec("GET", url, {"Accept": OCI_MANIFEST}, 200)
                    before = cpu_seconds(workers)
                    rate = run_wrk(spec, 8, args.duration, 1, tmp)
                    used = cpu_seconds(workers) - before
                finally:
                    srv.stop()
                per_request = used / max(1, rate.ok) * 1e6
                results[name].append(per_request)
                print(
                    f"round {round_ + 1} metrics {name:3}: {rate.ok / rate.elapsed:7.0f} req/s, "
                    f"{per_request:5.0f} us worker CPU per manifest GET"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    off = sum(results["off"]) / len(results["off"])
    on = sum(results["on"]) / len(results["on"])
    print(
        f"mean worker CPU per manifest GET: off {off:.0f} us, on {on:.0f} us, on/off {on / off:.2f}"
    )


if __name__ == "__main__":
    main()
