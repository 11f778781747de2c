#!/usr/bin/env python3
"""Side-by-side benchmark: hatchway vs CNCF distribution 2.8 (Debian docker-registry).

Both registries run on 127.0.0.1 in the same run and get the same workload from the same
client code; the table shows each figure and the ratio hatchway/distribution.  Only loopback
traffic; every loop is bounded by a count or a duration.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import aiohttp
from benchkit import (
    NAMES,
    OCI_MANIFEST,
    TIMEOUT,
    BenchError,
    Blobs,
    MiB,
    Reg,
    RssPeak,
    Server,
    Spec,
    manifest,
    mem_kib,
    run_rate,
    run_wrk,
    setup,
    start_distribution,
    start_hatchway,
    tree_cpu,
    tree_pids,
    wait_ready,
    warm_proc,
)

# ---------------------------------------------------------------- results


@dataclass
class Row:
    workload: str
    unit: str
    client: str
    values: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu: dict[str, float] = field(default_factory=dict)  # fraction of one core


def _fmt(value: float) -> str:
    """One decimal, two below 10 (CPU seconds per GB, ms per request)."""
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


class Results:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}

    def add(
        self,
        workload: str,
        unit: str,
        client: str,
        name: str,
        value: float | None,
        cpu: float | None = None,
        errors: int = 0,
    ) -> None:
        row = self.rows.setdefault((workload, client), Row(workload, unit, client))
        row.values[name] = value
        if errors:
            row.errors[name] = errors
        if cpu is not None:
            row.client_cpu[name] = round(cpu, 2)
        shown = "-" if value is None else _fmt(value)
        print(
            f"  {name:<12} {workload:<34} {shown:>10} {unit}  [{client}]"
            + (f"  ({errors} errors)" if errors else ""),
            file=sys.stderr,
            flush=True,
        )

    def table(self, names: list[str]) -> str:
        w = max([8, *(len(r.workload) for r in self.rows.values())])
        head = f"{'workload':<{w}} {'unit':<5} {'client':<11}"
        head += "".join(f" {n:>12}" for n in NAMES) + f" {'ratio':>7}  notes"
        out = [head, "-" * len(head)]
        for r in self.rows.values():
            vals = [r.values.get(n) for n in NAMES]
            line = f"{r.workload:<{w}} {r.unit:<5} {r.client:<11}"
            line += "".join(f" {'-' if v is None else _fmt(v):>12}" for v in vals)
            h, d = vals
            line += f" {f'{h / d:.2f}' if h is not None and d else '-':>7}"
            notes = [f"{n}: {e} errors" for n, e in r.errors.items()]
            notes += [f"{n}: client {c:.0%} cpu" for n, c in r.client_cpu.items() if c >= 0.9]
            out.append((line + "  " + "; ".join(notes)).rstrip())
        return "\n".join(out)


# ---------------------------------------------------------------- main benchmark


async def throughput(jobs: Sequence[Callable[[], Awaitable[int]]]) -> tuple[float, float]:
    """Run jobs one after another; return (MB/s of the bytes they report, client CPU share)."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    total = 0
    for job in jobs:
        total += await job()
    dt = time.perf_counter() - t0
    return total / dt / 1e6, (time.process_time() - cpu0) / dt


def clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


WORKLOADS = ("push", "pull", "manifest-put", "manifest-get", "manifest-head", "tags", "catalog")


class Bench:
    """One run: both registries, the workloads chosen with --workloads, one result table."""

    def __init__(self, args: argparse.Namespace, res: Results, tmp: Path) -> None:
        self.args, self.res, self.tmp = args, res, tmp
        self.blobs = Blobs()
        self.regs: list[Reg] = []
        self.sessions: list[aiohttp.ClientSession] = []
        self.pool: ProcessPoolExecutor | None = None
        self.flip = 0
        # size (MiB) -> variants: [mono, chunked, chunked-fresh]
        self.plan: dict[int, list[list[int]]] = {}

    def session(self, **kw: Any) -> aiohttp.ClientSession:
        conn = aiohttp.TCPConnector(**kw)
        sess = aiohttp.ClientSession(connector=conn, timeout=TIMEOUT, auto_decompress=False)
        self.sessions.append(sess)
        return sess

    def order(self) -> list[Reg]:
        """Alternate which registry goes first, against order bias."""
        self.flip += 1
        return self.regs if self.flip % 2 else self.regs[::-1]

    def make_plan(self) -> None:
        args, nxt = self.args, 1
        for s in args.sizes:
            reps = clamp(
                (32 if args.quick else 256) // s, 1 if args.quick else 2, 8 if args.quick else 32
            )
            n_chunked = reps if s > args.chunk_mib else 0
            counts = (reps, n_chunked, n_chunked)
            self.plan[s] = [
                list(range(nxt + sum(counts[:i]), nxt + sum(counts[: i + 1]))) for i in range(3)
            ]
            nxt += sum(counts)
        t0 = time.perf_counter()
        for s, lists in self.plan.items():
            for v in (v for vs in lists for v in vs):
                self.blobs.digest(v, s * MiB)
        print(f"digests precomputed in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    async def run(self, servers: list[Server]) -> None:
        args, res = self.args, self.res
        self.make_plan()
        if args.client_procs > 1:
            self.pool = ProcessPoolExecutor(args.client_procs, mp_context=get_context("spawn"))
        try:
            if self.pool is not None:  # spawn + import aiohttp now, not inside a timed window
                list(self.pool.map(warm_proc, range(args.client_procs * 2)))
            wanted = set(args.workloads)
            tags = args.tags if "tags" in wanted else []
            repos = args.repos if "catalog" in wanted else 0
            for srv in servers:
                self.regs.append(Reg(srv.name, srv.base, self.session(limit=64), srv.pid))
                await wait_ready(srv, self.regs[-1].session)
                t0 = time.perf_counter()
                await setup(self.regs[-1], tags, repos)
                print(
                    f"{srv.name}: ready at {srv.base}, setup {time.perf_counter() - t0:.1f}s",
                    file=sys.stderr,
                )
            for reg in self.regs:  # PSS splits pages shared between forked workers
                pids = tree_pids(reg.pid) if reg.pid else []
                for key, file in (("VmRSS", "status"), ("Pss", "smaps_rollup")):
                    kib = mem_kib(pids, key, file) / 1024 if pids else None
                    res.add(f"{key.lower()[-3:]} after setup", "MiB", "/proc", reg.name, kib)
            if "push" in wanted:
                await self.pushes()
            if "pull" in wanted:
                await self.pulls(pushed="push" in wanted)
            await self.rates(wanted)
        finally:
            for sess in self.sessions:
                await sess.close()
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)

    def server_cpu(self, work: str, reg: Reg, cpu0: float | None, done: int) -> None:
        """The server's CPU per unit of the work just measured (its process tree's user +
        system time): seconds per GB (10^9 B) for transfers, ms per request for rates."""
        cpu1 = tree_cpu(reg.pid)
        if cpu0 is None or cpu1 is None or not done:
            return
        if work.startswith("push"):
            value, unit = (cpu1 - cpu0) / (done / 1e9), "s/GB"
        else:
            value, unit = (cpu1 - cpu0) * 1000 / done, "ms/rq"
        self.res.add(f"server CPU, {work}", unit, "/proc", reg.name, value)

    async def pushes(self) -> None:
        # Blob transfers: one kept-alive connection, as a client pushing one layer does (a
        # pool would spread consecutive PATCHes over connections, hence server workers).
        # "new conn/req" rows make that spreading deliberate: a new connection per request.
        args, res, blobs = self.args, self.res, self.blobs
        chunk = args.chunk_mib * MiB
        single = {r.name: replace(r, session=self.session(limit=1)) for r in self.regs}
        fresh = {r.name: replace(r, session=self.session(force_close=True)) for r in self.regs}
        for s, (mono, chunked, chunked_fresh) in self.plan.items():
            size = s * MiB
            for reg in self.order():
                os.sync()  # don't let one server's writeback land in the other's figure
                one = single[reg.name]
                with RssPeak(reg.pid) as peak:
                    jobs = [partial(one.push_mono, "bench/blobs", blobs, v, size) for v in mono]
                    cpu0 = tree_cpu(reg.pid)
                    rate, cpu = await throughput(jobs)
                    res.add(f"push monolithic {s} MiB", "MB/s", "aiohttp", reg.name, rate, cpu)
                    self.server_cpu(f"push monolithic {s} MiB", reg, cpu0, len(mono) * size)
                    for via, vs, how in (
                        (one, chunked, ""),
                        (fresh[reg.name], chunked_fresh, ", new conn/req"),
                    ):
                        if not vs:
                            continue
                        push = partial(via.push_chunked, "bench/blobs", blobs, size=size)
                        jobs = [partial(push, variant=v, chunk=chunk) for v in vs]
                        cpu0 = tree_cpu(reg.pid)
                        rate, cpu = await throughput(jobs)
                        label = f"push chunked {s} MiB ({args.chunk_mib} MiB{how})"
                        res.add(label, "MB/s", "aiohttp", reg.name, rate, cpu)
                        self.server_cpu(label, reg, cpu0, len(vs) * size)
                if s > args.chunk_mib and reg.pid:
                    hwm = mem_kib(tree_pids(reg.pid), "VmHWM") / 1024
                    res.add(
                        f"rss peak during {s} MiB pushes",
                        "MiB",
                        "sampled",
                        reg.name,
                        peak.peak_kib / 1024,
                    )
                    res.add(f"sum VmHWM after {s} MiB pushes", "MiB", "/proc", reg.name, hwm)

    async def pulls(self, pushed: bool) -> None:
        """GET one blob per size: an aiohttp round, then --rounds raw-socket rounds.

        Each round pulls from both registries (order alternating), so each round has its
        own same-run ratio; a ratio that swings between rounds shows in the table.
        """
        args, res = self.args, self.res
        single = {r.name: replace(r, session=self.session(limit=1)) for r in self.regs}
        for s, (mono, *_) in self.plan.items():
            if s <= args.chunk_mib:
                continue
            size = s * MiB
            digest = self.blobs.digest(mono[0], size)
            if not pushed:  # untimed: the blob the push workload would have left
                for reg in self.regs:
                    await single[reg.name].push_mono("bench/blobs", self.blobs, mono[0], size)
            reps = 2 if args.quick else clamp(1024 // s, 3, 16)
            rbuf = memoryview(bytearray(MiB))
            for reg in (single[r.name] for r in self.order()):
                await throughput([partial(reg.pull, "bench/blobs", digest, size)])  # warm-up
                jobs = [partial(reg.pull, "bench/blobs", digest, size)] * reps
                res.add(f"pull {s} MiB", "MB/s", "aiohttp", reg.name, *await throughput(jobs))
            for rnd in range(1, args.rounds + 1):
                for reg in (single[r.name] for r in self.order()):
                    raw = partial(
                        asyncio.to_thread, reg.pull_raw, "bench/blobs", digest, rbuf, size
                    )
                    rate, cpu = await throughput([raw] * reps)
                    label = f"pull {s} MiB, round {rnd}"
                    res.add(label, "MB/s", "raw socket", reg.name, rate, cpu)

    async def rates(self, wanted: set[str]) -> None:
        args, res = self.args, self.res
        accept = {"Accept": OCI_MANIFEST}
        put_body = manifest("@SEQ@")
        specs: list[tuple[str, str, str, str, dict[str, str], bytes | None, bool]] = [
            (
                "manifest-put",
                "manifest PUT by tag",
                "PUT",
                "/v2/bench/put/manifests/@TAG@",
                {"Content-Type": OCI_MANIFEST},
                put_body,
                True,
            ),
            (
                "manifest-get",
                "manifest GET by tag",
                "GET",
                "/v2/bench/m/manifests/latest",
                accept,
                None,
                False,
            ),
            (
                "manifest-head",
                "manifest HEAD by tag",
                "HEAD",
                "/v2/bench/m/manifests/latest",
                accept,
                None,
                False,
            ),
        ]
        specs += [
            (
                "tags",
                f"tags list ({n} tags)",
                "GET",
                f"/v2/bench/tags-{n}/tags/list",
                {},
                None,
                False,
            )
            for n in args.tags
        ]
        specs.append(
            (
                "catalog",
                f"catalog n=1000 ({args.repos} repos)",
                "GET",
                "/v2/_catalog?n=1000",
                {},
                None,
                False,
            )
        )
        wrk = None if args.no_wrk else shutil.which("wrk")
        for key, label, method, path, hdrs, body, vary in specs:
            if key not in wanted:
                continue
            code = 201 if method == "PUT" else 200
            for conc in args.conc:
                for reg in self.order():
                    spec = Spec(method, reg.base + path, hdrs, code, body, vary)
                    procs = args.client_procs if conc > 1 else 1
                    cpu0 = tree_cpu(reg.pid)
                    r = await run_rate(spec, conc, args.duration, self.pool, procs)
                    client = "aiohttp" + (f" x{procs}" if procs > 1 else "")
                    work = f"{label} c={conc}"
                    cpu = r.cpu / r.elapsed
                    res.add(work, "req/s", client, reg.name, r.ok / r.elapsed, cpu, r.errors)
                    self.server_cpu(work, reg, cpu0, r.ok + r.errors)
                    # wrk cannot do HEAD: it waits for a body after Content-Length.
                    if wrk and conc > 1 and method == "GET":
                        r = run_wrk(spec, conc, args.duration, args.wrk_threads, self.tmp)
                        client = f"wrk -t{args.wrk_threads}"
                        res.add(work, "req/s", client, reg.name, r.ok / r.elapsed, None, r.errors)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--only", choices=NAMES, help="benchmark only this registry")
    p.add_argument("--workers", type=int, default=2, help="hatchway --workers (default 2)")
    p.add_argument("--hatchway-bin", default=str(Path(sys.executable).parent / "hatchway"))
    p.add_argument("--hatchway-url", help="use an already running hatchway (not started)")
    p.add_argument("--hatchway-pid", type=int, help="its pid, for memory figures")
    p.add_argument("--distribution-bin", default="/usr/bin/docker-registry")
    p.add_argument(
        "--dist-cache",
        choices=("inmemory", "none"),
        default="inmemory",
        help="distribution storage.cache.blobdescriptor (default inmemory)",
    )
    p.add_argument("--sizes", type=ints, help="blob sizes in MiB (default 1,64,512)")
    p.add_argument("--chunk-mib", type=int, default=8, help="PATCH chunk size (default 8)")
    p.add_argument("--duration", type=float, help="seconds per rate workload (default 5)")
    p.add_argument("--conc", type=ints, default=[1, 32], help="concurrencies (default 1,32)")
    p.add_argument(
        "--tags", type=ints, help="tags-list repositories, by tag count (default 100,1000)"
    )
    p.add_argument("--repos", type=int, help="repositories for the catalog (default 1000)")
    p.add_argument(
        "--client-procs",
        type=int,
        default=2,
        help="aiohttp client processes for concurrency > 1 (default 2)",
    )
    p.add_argument("--no-wrk", action="store_true", help="don't add wrk rows for c>1 GETs")
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument(
        "--workloads",
        type=lambda s: [w for w in s.split(",") if w],
        default=list(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default all)",
    )
    p.add_argument("--rounds", type=int, default=3, help="raw-socket pull rounds (default 3)")
    p.add_argument("--quick", action="store_true", help="small sizes, short durations")
    p.add_argument("--tmpdir", help="parent directory for the registries' data")
    p.add_argument(
        "--groupcommit",
        choices=("auto", "true", "false"),
        default="auto",
        help="hatchway storage.filesystem.groupcommit (default auto: on; on the '/' "
        "filesystem only while its syncs stay quick)",
    )
    p.add_argument("--json", help="also write results to this file")
    a = p.parse_args()
    a.sizes = a.sizes or ([1, 16, 64] if a.quick else [1, 64, 512])
    a.duration = a.duration or (1.0 if a.quick else 5.0)
    a.tags = a.tags or ([20] if a.quick else [100, 1000])
    unknown = set(a.workloads) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workload(s): {', '.join(sorted(unknown))}; choose from {WORKLOADS}")
    a.repos = a.repos or (100 if a.quick else 1000)
    return a


def main() -> int:
    args = parse_args()
    names = [args.only] if args.only else list(NAMES)
    tmp = Path(tempfile.mkdtemp(prefix="hatchway-bench-", dir=args.tmpdir))
    servers: list[Server] = []
    res = Results()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for name in names:
            (tmp / name).mkdir()
            if name == "hatchway" and args.hatchway_url:
                servers.append(Server(name, args.hatchway_url.rstrip("/"), pid=args.hatchway_pid))
            elif name == "hatchway":
                env = {}  # only when asked: older hatchways reject the unknown key
                if args.groupcommit != "auto":
                    env["HATCHWAY_STORAGE_FILESYSTEM_GROUPCOMMIT"] = args.groupcommit
                servers.append(start_hatchway(args.hatchway_bin, tmp / name, args.workers, env=env))
            else:
                servers.append(
                    start_distribution(args.distribution_bin, tmp / name, args.dist_cache)
                )
        asyncio.run(Bench(args, res, tmp).run(servers))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if res.rows:
            print(
                f"\nratio = hatchway/distribution (rates: higher is better for hatchway; "
                f"memory: lower is better). distribution cache: {args.dist_cache}; "
                f"hatchway workers: {args.workers}, groupcommit: {args.groupcommit}; "
                f"2-core shared machine, client and "
                f"servers compete for CPU.\n"
            )
            print(res.table(names))
            if args.json:
                meta = {k: v for k, v in vars(args).items()}
                Path(args.json).write_text(
                    json.dumps(
                        {"meta": meta, "rows": [asdict(r) for r in res.rows.values()]}, indent=1
                    )
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
