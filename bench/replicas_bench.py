"""Manifest GET rate through nginx with one replica vs two (one worker each).

Starts two ``hatchway serve`` replicas (no auth) sharing one SeaweedFS bucket and one
fresh PostgreSQL schema (tests/replicas/support.py), pushes one image, then two nginx
instances with the same config: one balancing over replica A alone, one over A and B.
``wrk`` drives ``GET /v2/<repo>/manifests/<tag>`` through each, alternating the order
each round, and the script prints the median requests/s per setup and the 2/1 ratio
(target: >= 1.6x; on a 2-core machine that leaves nginx and wrk little room, so the
figure says as much about the machine as about hatchway).

    .venv/bin/python bench/replicas_bench.py [--rounds 3] [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.replicas.support import cluster
from tests.support.images import make_image
from tests.support.nginx import start_nginx
from tests.support.oci import OCI_MANIFEST, push_image

_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")


def wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "-H",
            f"Accept: {OCI_MANIFEST}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = _RATE.search(out)
    if match is None:
        raise RuntimeError(f"no rate in wrk output: {out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} failed requests: {out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="hw-replicas-bench-") as tmp:
        base = Path(tmp)
        with cluster(base) as c:
            a, b = c.replicas
            with httpx.Client(base_url=a.url, timeout=60) as client:
                push_image(client, "bench/app", make_image("bench"), "latest")
            one = start_nginx(base / "nginx-1", [a.addr])
            two = start_nginx(base / "nginx-2", [a.addr, b.addr])
            try:
                path = "/v2/bench/app/manifests/latest"
                for proxy in (one, two):  # warm up both replicas' caches and connections
                    wrk(proxy.url + path, 2, args.connections)
                rates: dict[str, list[float]] = {"1 replica": [], "2 replicas": []}
                for n in range(args.rounds):
                    order = [("1 replica", one), ("2 replicas", two)]
                    for label, proxy in order if n % 2 == 0 else order[::-1]:
                        rate = wrk(proxy.url + path, args.seconds, args.connections)
                        rates[label].append(rate)
                        print(f"round {n + 1}: {label}: {rate:.0f} req/s", flush=True)
            finally:
                one.stop()
                two.stop()
        medians = {label: statistics.median(v) for label, v in rates.items()}
        for label, rate in medians.items():
            print(f"{label}: median {rate:.0f} manifest GET/s")
        ratio = medians["2 replicas"] / medians["1 replica"]
        print(f"2 replicas / 1 replica: {ratio:.2f}x (target >= 1.6x)")


if __name__ == "__main__":
    main()
