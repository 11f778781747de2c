#!/usr/bin/env python3
"""Side-by-side benchmark: hatchway vs CNCF distribution 2.8 (Debian docker-registry).

Both registries run on 127.0.0.1 in the same run and get the same workload from the same
client code; the table shows each figure and the ratio hatchway/distribution.  Only loopback
traffic; every loop is bounded by a count or a duration.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import aiohttp
import yaml
from yarl import URL

MiB = 1 << 20
PIECE = MiB  # granularity of streamed request bodies
TILE = 8 * MiB  # one random buffer, tiled to make blobs of any size
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCTET = "application/octet-stream"
NAMES = ("hatchway", "distribution")
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- test data


class Blobs:
    """Virtual blobs: 8-byte big-endian variant number + a tiled random buffer.

    Bodies are streamed as memoryview slices of one preallocated buffer (no per-chunk
    allocation); each variant has its own digest, computed before the timed part.
    """

    def __init__(self) -> None:
        self.tile = memoryview(os.urandom(TILE))
        self.digests: dict[tuple[int, int], str] = {}

    def pieces(self, variant: int, start: int, end: int) -> Iterator[bytes | memoryview]:
        pos = start
        if pos < 8:
            yield variant.to_bytes(8, "big")[pos : min(8, end)]
            pos = 8
        while pos < end:
            off = pos % TILE
            n = min(PIECE - pos % PIECE, end - pos)
            yield self.tile[off : off + n]
            pos += n

    async def stream(self, variant: int, start: int, end: int) -> AsyncIterator[bytes]:
        for p in self.pieces(variant, start, end):
            yield p  # type: ignore[misc]  # memoryview is fine for aiohttp's writer

    def digest(self, variant: int, size: int) -> str:
        key = (variant, size)
        if key not in self.digests:
            h = hashlib.sha256()
            for p in self.pieces(variant, 0, size):
                h.update(p)
            self.digests[key] = "sha256:" + h.hexdigest()
        return self.digests[key]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = os.urandom(1024)


def manifest(seq: str) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(CONFIG),
            "size": len(CONFIG),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha(LAYER),
                "size": len(LAYER),
            }
        ],
        "annotations": {"bench.seq": seq},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    base: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    pid: int | None = None  # root of the process tree whose memory is reported

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)  # own session: the whole tree, nothing else
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(name: str, argv: list[str], workdir: Path, port: int) -> Server:
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Server(name, f"http://127.0.0.1:{port}", proc, log, proc.pid)


def start_distribution(binary: str, workdir: Path, cache: str) -> Server:
    port = free_port()
    storage: dict[str, object] = {
        "filesystem": {"rootdirectory": str(workdir / "data")},
        "delete": {"enabled": True},
        "maintenance": {"uploadpurging": {"enabled": False}},
    }
    if cache == "inmemory":
        storage["cache"] = {"blobdescriptor": "inmemory"}
    cfg = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": storage,
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    path = workdir / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return spawn("distribution", [binary, "serve", str(path)], workdir, port)


def start_hatchway(binary: str, workdir: Path, workers: int) -> Server:
    port = free_port()
    argv = [binary, "serve", "--addr", f"127.0.0.1:{port}", "--data", str(workdir / "data"),
            "--workers", str(workers)]
    return spawn("hatchway", argv, workdir, port)


async def wait_ready(srv: Server, session: aiohttp.ClientSession, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if srv.proc is not None and srv.proc.poll() is not None:
            raise BenchError(f"{srv.name} exited rc={srv.proc.returncode}\n{srv.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(srv.base + "/v2/") as r:
                if r.status == 200:
                    return
        if time.monotonic() > deadline:
            raise BenchError(f"{srv.name}: GET /v2/ not 200 after {timeout}s\n{srv.log_tail()}")
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------- memory


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(d))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def mem_kib(pids: list[int], key: str) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


class RssPeak:
    """Peak of the summed VmRSS of a process tree, sampled every 20 ms in a thread."""

    def __init__(self, root: int | None) -> None:
        self.root, self.peak_kib = root, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        assert self.root is not None
        pids, refreshed = tree_pids(self.root), time.monotonic()
        while not self._stop.wait(0.02):
            if time.monotonic() - refreshed > 0.5:
                pids, refreshed = tree_pids(self.root), time.monotonic()
            self.peak_kib = max(self.peak_kib, mem_kib(pids, "VmRSS"))

    def __enter__(self) -> RssPeak:
        if self.root is not None:
            self.peak_kib = mem_kib(tree_pids(self.root), "VmRSS")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


# ---------------------------------------------------------------- client


@dataclass
class Reg:
    name: str
    base: str
    session: aiohttp.ClientSession
    pid: int | None

    def _abs(self, loc: str, **query: str) -> URL:
        url = loc if "://" in loc else self.base + loc
        for k, v in query.items():
            url += ("&" if "?" in url else "?") + f"{k}={v}"
        return URL(url, encoded=True)  # keep the server's opaque _state etc. untouched

    @staticmethod
    async def _expect(r: aiohttp.ClientResponse, *codes: int) -> None:
        if r.status not in codes:
            raise BenchError(f"{r.method} {r.url} -> {r.status}: {(await r.text())[:300]}")

    async def start_upload(self, repo: str, **query: str) -> tuple[int, str]:
        url = self._abs(f"/v2/{repo}/blobs/uploads/", **query)
        async with self.session.post(url) as r:
            await self._expect(r, 201, 202)
            await r.read()
            return r.status, r.headers.get("Location", "")

    async def push_mono(self, repo: str, blobs: Blobs, variant: int, size: int) -> None:
        _, loc = await self.start_upload(repo)
        url = self._abs(loc, digest=blobs.digest(variant, size))
        hdrs = {"Content-Type": OCTET, "Content-Length": str(size)}
        async with self.session.put(url, data=blobs.stream(variant, 0, size), headers=hdrs) as r:
            await self._expect(r, 201)

    async def push_chunked(self, repo: str, blobs: Blobs, variant: int, size: int,
                           chunk: int) -> None:
        _, loc = await self.start_upload(repo)
        for start in range(0, size, chunk):
            end = min(start + chunk, size)
            hdrs = {"Content-Type": OCTET, "Content-Length": str(end - start),
                    "Content-Range": f"{start}-{end - 1}"}
            body = blobs.stream(variant, start, end)
            async with self.session.patch(self._abs(loc), data=body, headers=hdrs) as r:
                await self._expect(r, 202)
                loc = r.headers["Location"]
        url = self._abs(loc, digest=blobs.digest(variant, size))
        async with self.session.put(url, headers={"Content-Length": "0"}) as r:
            await self._expect(r, 201)

    async def pull(self, repo: str, digest: str) -> int:
        n = 0
        async with self.session.get(f"{self.base}/v2/{repo}/blobs/{digest}") as r:
            await self._expect(r, 200)
            async for data in r.content.iter_any():
                n += len(data)
        return n

    async def put_small(self, repo: str, data: bytes, mount_from: str | None = None) -> None:
        query = {"mount": sha(data), "from": mount_from} if mount_from else {}
        status, loc = await self.start_upload(repo, **query)
        if status == 201:  # mounted
            return
        hdrs = {"Content-Type": OCTET}
        async with self.session.put(self._abs(loc, digest=sha(data)), data=data,
                                    headers=hdrs) as r:
            await self._expect(r, 201)

    async def put_manifest(self, repo: str, ref: str, body: bytes) -> None:
        url = f"{self.base}/v2/{repo}/manifests/{ref}"
        async with self.session.put(url, data=body,
                                    headers={"Content-Type": OCI_MANIFEST}) as r:
            await self._expect(r, 201)


async def bounded(n: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    sem = asyncio.Semaphore(n)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def setup(reg: Reg, n_tags: int, n_repos: int) -> None:
    """Untimed: blobs + manifests for the manifest, tags-list and catalog workloads."""
    for data in (CONFIG, LAYER):
        await reg.put_small("bench/m", data)
        await reg.put_small("bench/put", data, "bench/m")
        await reg.put_small("bench/tags", data, "bench/m")
    await reg.put_manifest("bench/m", "latest", manifest("base"))
    body = manifest("tags")
    await bounded(16, [lambda i=i: reg.put_manifest("bench/tags", f"t{i:03d}", body)
                       for i in range(n_tags)])

    async def make_repo(i: int) -> None:
        repo = f"bench/cat/r{i:04d}"
        for data in (CONFIG, LAYER):
            await reg.put_small(repo, data, "bench/m")
        await reg.put_manifest(repo, "latest", body)

    await bounded(16, [lambda i=i: make_repo(i) for i in range(n_repos)])


# ---------------------------------------------------------------- rate workloads


@dataclass(frozen=True)
class Spec:
    """A request repeated for a duration. With vary: '@TAG@' in the path becomes one tag
    per worker and b'@SEQ@' in the body a unique sequence number (new digest per PUT)."""

    method: str
    url: str
    headers: dict[str, str]
    expect: int
    body: bytes | None = None
    vary: bool = False


@dataclass
class Rate:
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0  # client CPU seconds (max over client processes)


async def rate_loop(spec: Spec, conc: int, start_at: float, duration: float, tag: str) -> Rate:
    conn = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=conn, timeout=TIMEOUT,
                                     auto_decompress=False) as session:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu0, t0 = time.process_time(), time.perf_counter()
        deadline, res = t0 + duration, Rate()

        async def worker(w: int) -> None:
            url = URL(spec.url.replace("@TAG@", f"{tag}w{w}"), encoded=True)
            i = 0
            while time.perf_counter() < deadline:
                body = spec.body
                if spec.vary and body is not None:
                    body = body.replace(b"@SEQ@", f"{tag}-{w}-{i}".encode())
                i += 1
                try:
                    async with session.request(spec.method, url, data=body,
                                               headers=spec.headers) as r:
                        await r.read()
                        good = r.status == spec.expect
                except (aiohttp.ClientError, TimeoutError):
                    good = False
                    await asyncio.sleep(0.01)
                if good:
                    res.ok += 1
                else:
                    res.errors += 1

        await asyncio.gather(*(worker(w) for w in range(conc)))
        res.elapsed, res.cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return res


def rate_proc(spec: Spec, conc: int, start_at: float, duration: float, tag: str) -> Rate:
    return asyncio.run(rate_loop(spec, conc, start_at, duration, tag))


def warm_proc(_: int) -> int:
    return os.getpid()


async def run_rate(spec: Spec, conc: int, duration: float, pool: ProcessPoolExecutor | None,
                   procs: int) -> Rate:
    if pool is None or procs <= 1 or conc <= 1:
        return await rate_loop(spec, conc, 0.0, duration, "p0")
    loop, start_at = asyncio.get_running_loop(), time.time() + 0.5
    shares = [conc // procs + (1 if p < conc % procs else 0) for p in range(procs)]
    parts = await asyncio.gather(*(
        loop.run_in_executor(pool, rate_proc, spec, n, start_at, duration, f"p{p}")
        for p, n in enumerate(shares) if n))
    return Rate(sum(p.ok for p in parts), sum(p.errors for p in parts),
                max(p.elapsed for p in parts), max(p.cpu for p in parts))


def run_wrk(spec: Spec, conc: int, duration: float, threads: int, tmp: Path) -> Rate:
    lua = tmp / "wrk.lua"
    lines = [f'wrk.method = "{spec.method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in spec.headers.items()]
    lua.write_text("\n".join(lines) + "\n")
    argv = ["wrk", f"-t{min(threads, conc)}", f"-c{conc}", f"-d{max(1, round(duration))}s",
            "--timeout", "10s", "-s", str(lua), spec.url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60,
                         check=True).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", out)
    if not m:
        raise BenchError(f"cannot parse wrk output:\n{out}")
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    errors = sum(int(x) for x in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|"
                                             r"timeout):? (\d+)", out))
    return Rate(int(m.group(1)) - errors, errors, float(m.group(2)) * scale, 0.0)


# ---------------------------------------------------------------- results


@dataclass
class Row:
    workload: str
    unit: str
    client: str
    values: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu: dict[str, float] = field(default_factory=dict)  # fraction of one core


class Results:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}

    def add(self, workload: str, unit: str, client: str, name: str, value: float | None,
            errors: int = 0, cpu: float | None = None) -> None:
        row = self.rows.setdefault((workload, client), Row(workload, unit, client))
        row.values[name] = value
        if errors:
            row.errors[name] = errors
        if cpu is not None:
            row.client_cpu[name] = round(cpu, 2)
        shown = "-" if value is None else f"{value:.1f}"
        print(f"  {name:<12} {workload:<34} {shown:>10} {unit}  [{client}]"
              + (f"  ({errors} errors)" if errors else ""), file=sys.stderr, flush=True)

    def table(self, names: list[str]) -> str:
        head = f"{'workload':<34} {'unit':<5} {'client':<11}"
        head += "".join(f" {n:>12}" for n in NAMES) + f" {'ratio':>7}  notes"
        out = [head, "-" * len(head)]
        for r in self.rows.values():
            vals = [r.values.get(n) for n in NAMES]
            line = f"{r.workload:<34} {r.unit:<5} {r.client:<11}"
            line += "".join(f" {'-' if v is None else f'{v:.1f}':>12}" for v in vals)
            h, d = vals
            line += f" {f'{h / d:.2f}' if h is not None and d else '-':>7}"
            notes = [f"{n}: {e} errors" for n, e in r.errors.items()]
            notes += [f"{n}: client {c:.0%} cpu" for n, c in r.client_cpu.items() if c >= 0.9]
            out.append((line + "  " + "; ".join(notes)).rstrip())
        return "\n".join(out)


# ---------------------------------------------------------------- main benchmark


def clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


async def bench(args: argparse.Namespace, servers: list[Server], res: Results,
                tmp: Path) -> None:
    chunk = args.chunk_mib * MiB
    blobs = Blobs()
    plan: dict[int, tuple[list[int], list[int]]] = {}  # size -> (mono, chunked) variants
    nxt = 1
    for s in args.sizes:
        reps = clamp((32 if args.quick else 256) // s, 1 if args.quick else 2,
                     8 if args.quick else 32)
        n_chunked = reps if s > args.chunk_mib else 0
        plan[s] = (list(range(nxt, nxt + reps)), list(range(nxt + reps, nxt + reps + n_chunked)))
        nxt += reps + n_chunked
    t0 = time.perf_counter()
    for s, (mono, chunked) in plan.items():
        for v in mono + chunked:
            blobs.digest(v, s * MiB)
    print(f"digests precomputed in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    pool = None
    if args.client_procs > 1:
        pool = ProcessPoolExecutor(args.client_procs, mp_context=get_context("spawn"))
    regs: list[Reg] = []
    try:
        if pool is not None:  # spawn + import aiohttp now, not inside a timed window
            list(pool.map(warm_proc, range(args.client_procs * 2)))
        for srv in servers:
            conn = aiohttp.TCPConnector(limit=64)
            session = aiohttp.ClientSession(connector=conn, timeout=TIMEOUT,
                                            auto_decompress=False)
            regs.append(Reg(srv.name, srv.base, session, srv.pid))
            await wait_ready(srv, session)
            t0 = time.perf_counter()
            await setup(regs[-1], args.tags, args.repos)
            print(f"{srv.name}: ready at {srv.base}, setup {time.perf_counter() - t0:.1f}s",
                  file=sys.stderr)
        for reg in regs:
            idle = mem_kib(tree_pids(reg.pid), "VmRSS") / 1024 if reg.pid else None
            res.add("rss after setup", "MiB", "-", reg.name, idle)

        flip = 0  # alternate which registry goes first, against order bias

        def order() -> list[Reg]:
            nonlocal flip
            flip += 1
            return regs if flip % 2 else regs[::-1]

        for s, (mono, chunked) in plan.items():
            size = s * MiB
            for reg in order():
                os.sync()  # don't let one server's writeback land in the other's figure
                with RssPeak(reg.pid) as peak:
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    for v in mono:
                        await reg.push_mono("bench/blobs", blobs, v, size)
                    dt = time.perf_counter() - t0
                    res.add(f"push monolithic {s} MiB", "MB/s", "aiohttp", reg.name,
                            size * len(mono) / dt / 1e6, cpu=(time.process_time() - cpu0) / dt)
                    if chunked:
                        cpu0, t0 = time.process_time(), time.perf_counter()
                        for v in chunked:
                            await reg.push_chunked("bench/blobs", blobs, v, size, chunk)
                        dt = time.perf_counter() - t0
                        res.add(f"push chunked {s} MiB ({args.chunk_mib} MiB)", "MB/s",
                                "aiohttp", reg.name, size * len(chunked) / dt / 1e6,
                                cpu=(time.process_time() - cpu0) / dt)
                if s > args.chunk_mib:
                    pk = peak.peak_kib / 1024 if reg.pid else None
                    hwm = mem_kib(tree_pids(reg.pid), "VmHWM") / 1024 if reg.pid else None
                    res.add(f"rss peak during {s} MiB pushes", "MiB", "sampled", reg.name, pk)
                    res.add(f"sum VmHWM after {s} MiB pushes", "MiB", "/proc", reg.name, hwm)

        for s, (mono, _) in plan.items():
            if s <= args.chunk_mib:
                continue
            digest, reps = blobs.digest(mono[0], s * MiB), 2 if args.quick else clamp(
                1024 // s, 3, 16)
            for reg in order():
                if await reg.pull("bench/blobs", digest) != s * MiB:  # warm-up (page cache)
                    raise BenchError(f"{reg.name}: short blob read")
                cpu0, t0 = time.process_time(), time.perf_counter()
                total = 0
                for _ in range(reps):
                    total += await reg.pull("bench/blobs", digest)
                dt = time.perf_counter() - t0
                res.add(f"pull {s} MiB", "MB/s", "aiohttp", reg.name, total / dt / 1e6,
                        cpu=(time.process_time() - cpu0) / dt)

        accept = {"Accept": OCI_MANIFEST}
        specs = [
            ("manifest PUT by tag", "PUT", "/v2/bench/put/manifests/@TAG@",
             {"Content-Type": OCI_MANIFEST}, 201, manifest("@SEQ@"), True),
            ("manifest GET by tag", "GET", "/v2/bench/m/manifests/latest", accept, 200,
             None, False),
            ("manifest HEAD by tag", "HEAD", "/v2/bench/m/manifests/latest", accept, 200,
             None, False),
            (f"tags list ({args.tags} tags)", "GET", "/v2/bench/tags/tags/list", {}, 200,
             None, False),
            (f"catalog n=1000 ({args.repos} repos)", "GET", "/v2/_catalog?n=1000", {}, 200,
             None, False),
        ]
        wrk = None if args.no_wrk else shutil.which("wrk")
        for label, method, path, hdrs, code, body, vary in specs:
            for conc in args.conc:
                for reg in order():
                    spec = Spec(method, reg.base + path, hdrs, code, body, vary)
                    procs = args.client_procs if conc > 1 else 1
                    r = await run_rate(spec, conc, args.duration, pool, procs)
                    client = "aiohttp" + (f" x{procs}" if procs > 1 else "")
                    res.add(f"{label} c={conc}", "req/s", client, reg.name, r.ok / r.elapsed,
                            r.errors, r.cpu / r.elapsed)
                    # wrk cannot do HEAD: it waits for a body after Content-Length.
                    if wrk and conc > 1 and method == "GET":
                        r = run_wrk(spec, conc, args.duration, args.wrk_threads, tmp)
                        res.add(f"{label} c={conc}", "req/s", f"wrk -t{args.wrk_threads}",
                                reg.name, r.ok / r.elapsed, r.errors)
    finally:
        for reg in regs:
            await reg.session.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--only", choices=NAMES, help="benchmark only this registry")
    p.add_argument("--workers", type=int, default=2, help="hatchway --workers (default 2)")
    p.add_argument("--hatchway-bin", default=str(Path(sys.executable).parent / "hatchway"))
    p.add_argument("--hatchway-url", help="use an already running hatchway (not started)")
    p.add_argument("--hatchway-pid", type=int, help="its pid, for memory figures")
    p.add_argument("--distribution-bin", default="/usr/bin/docker-registry")
    p.add_argument("--dist-cache", choices=("inmemory", "none"), default="inmemory",
                   help="distribution storage.cache.blobdescriptor (default inmemory)")
    p.add_argument("--sizes", type=ints, help="blob sizes in MiB (default 1,64,512)")
    p.add_argument("--chunk-mib", type=int, default=8, help="PATCH chunk size (default 8)")
    p.add_argument("--duration", type=float, help="seconds per rate workload (default 5)")
    p.add_argument("--conc", type=ints, default=[1, 32], help="concurrencies (default 1,32)")
    p.add_argument("--tags", type=int, help="tags in the tags-list repo (default 100)")
    p.add_argument("--repos", type=int, help="repositories for the catalog (default 1000)")
    p.add_argument("--client-procs", type=int, default=2,
                   help="aiohttp client processes for concurrency > 1 (default 2)")
    p.add_argument("--no-wrk", action="store_true", help="don't add wrk rows for c>1 GETs")
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="small sizes, short durations")
    p.add_argument("--tmpdir", help="parent directory for the registries' data")
    p.add_argument("--json", help="also write results to this file")
    a = p.parse_args()
    a.sizes = a.sizes or ([1, 16, 64] if a.quick else [1, 64, 512])
    a.duration = a.duration or (1.0 if a.quick else 5.0)
    a.tags = a.tags or (20 if a.quick else 100)
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
                servers.append(start_hatchway(args.hatchway_bin, tmp / name, args.workers))
            else:
                servers.append(start_distribution(args.distribution_bin, tmp / name,
                                                  args.dist_cache))
        asyncio.run(bench(args, servers, res, tmp))
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
            print(f"\nratio = hatchway/distribution (rates: higher is better for hatchway; "
                  f"memory: lower is better). distribution cache: {args.dist_cache}; "
                  f"hatchway workers: {args.workers}; 2-core shared machine, client and "
                  f"servers compete for CPU.\n")
            print(res.table(names))
            if args.json:
                meta = {k: v for k, v in vars(args).items()}
                Path(args.json).write_text(json.dumps(
                    {"meta": meta, "rows": [asdict(r) for r in res.rows.values()]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
