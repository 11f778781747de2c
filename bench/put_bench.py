"""Manifest PUT throughput with the audit trail on: hatchway open (audit to the log only)
and with token auth (every push's audit event committed to the database before the 201).

    .venv/bin/python bench/put_bench.py [--duration 5] [--workers 2] [--rounds 1] [--hatchway-bin B]

The same PUT workload as bench.py's "manifest PUT by tag" (a new digest per PUT, one tag
per client worker), at c=1 and c=32 with the aiohttp client (2 processes at c=32). Also the
server's CPU time per PUT (all its processes), which other load on the machine disturbs
less than the rates.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
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
    run_rate,
    sha,
    start_hatchway,
    tree_pids,
    wait_ready,
    warm_proc,
)

PASSWORD = "bench-admin-password"
BASIC = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
REPO = "admin/put"
TOKEN_CONFIG: dict[str, object] = {
    **HATCHWAY_OPEN_CONFIG,
    "auth": {"token": {"service": "hatchway", "issuer": "hatchway", "expiration": 3600}},
}


async def bearer(session: aiohttp.ClientSession, srv: Server) -> dict[str, str]:
    url = f"{srv.base}/auth/token?service=hatchway&scope=repository:{REPO}:pull,push"
    async with session.get(url, headers={"Authorization": BASIC}) as r:
        r.raise_for_status()
        return {"Authorization": "Bearer " + str((await r.json())["token"])}


async def blobs(session: aiohttp.ClientSession, srv: Server, headers: dict[str, str]) -> None:
    for blob in (CONFIG, LAYER):
        url = f"{srv.base}/v2/{REPO}/blobs/uploads/?digest={sha(blob)}"
        async with session.post(url, data=blob, headers={**headers, "Content-Type": OCTET}) as r:
            r.raise_for_status()


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


async def run(args: argparse.Namespace, tmp: Path) -> None:
    binary = args.hatchway_bin
    pool = ProcessPoolExecutor(2, mp_context=get_context("spawn"))
    list(pool.map(warm_proc, range(4)))
    try:
        async with aiohttp.ClientSession() as session:
            for mode, config in (("open", HATCHWAY_OPEN_CONFIG), ("token", TOKEN_CONFIG)):
                if mode not in args.modes:
                    continue
                env = {"HATCHWAY_ADMIN_PASSWORD": PASSWORD}
                srv = start_hatchway(binary, tmp / mode, args.workers, config, env)
                try:
                    await wait_ready(srv, session)
                    headers = await bearer(session, srv) if mode == "token" else {}
                    await blobs(session, srv, headers)
                    spec = Spec(
                        "PUT",
                        f"{srv.base}/v2/{REPO}/manifests/@TAG@",
                        {**headers, "Content-Type": OCI_MANIFEST},
                        201,
                        manifest("@SEQ@"),
                        True,
                    )
                    for _ in range(args.rounds):
                        for conc in (1, 32):
                            cpu = cpu_seconds(srv.pid)
                            r = await run_rate(spec, conc, args.duration, pool, 2)
                            per_put = (cpu_seconds(srv.pid) - cpu) / max(1, r.ok) * 1000
                            print(
                                f"manifest PUT {mode:5} c={conc:<2} {r.ok / r.elapsed:8.0f} req/s"
                                f"  {per_put:5.2f} server CPU ms/PUT  ({r.errors} errors)",
                                flush=True,
                            )
                finally:
                    srv.stop()
    finally:
        pool.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="open,token", help="open, token or both (default)")
    parser.add_argument("--hatchway-bin", default=str(Path(sys.executable).with_name("hatchway")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hatchway-put-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
