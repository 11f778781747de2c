"""Helpers for bench.py: test data, registry processes, memory sampling, HTTP clients.

Kept importable by name: bench.py's spawned client processes run rate_proc from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
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
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)
            if self.proc.poll() is not None:
                return


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(
    name: str, argv: list[str], workdir: Path, port: int, env: dict[str, str] | None = None
) -> Server:
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return Server(name, f"http://127.0.0.1:{port}", proc, log, proc.pid)


def start_distribution(
    binary: str, workdir: Path, cache: str, auth: dict[str, object] | None = None
) -> Server:
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
    if auth is not None:
        cfg["auth"] = auth
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return spawn("distribution", [binary, "serve", str(path)], workdir, port)


# Like the distribution config above: no auth, access log off, upload purging off.
HATCHWAY_OPEN_CONFIG = {
    "version": 0.1,
    "log": {"level": "error", "accesslog": {"disabled": True}},
    "storage": {
        "delete": {"enabled": True},
        "maintenance": {"uploadpurging": {"enabled": False}},
    },
}


def start_hatchway(
    binary: str,
    workdir: Path,
    workers: int,
    config: dict[str, object] | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "hatchway.yml"
    path.write_text(yaml.safe_dump(config or HATCHWAY_OPEN_CONFIG))
    argv = [
        binary,
        "serve",
        "--config",
        str(path),
        "--addr",
        f"127.0.0.1:{port}",
        "--data",
        str(workdir / "data"),
        "--workers",
        str(workers),
    ]
    return spawn("hatchway", argv, workdir, port, env)


async def wait_ready(srv: Server, session: aiohttp.ClientSession, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if srv.proc is not None and srv.proc.poll() is not None:
            raise BenchError(f"{srv.name} exited rc={srv.proc.returncode}\n{srv.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(srv.base + "/v2/") as r:
                if r.status in (200, 401):  # 401: up, with authentication on
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


def mem_kib(pids: list[int], key: str, file: str = "status") -> int:
    """Sum of a kB field (VmRSS, VmHWM; Pss with file="smaps_rollup") over processes."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int | None) -> float | None:
    """User + system CPU seconds of a process tree so far (``/proc/PID/stat``), with
    what its waited-for children used. None without a pid. The load of the machine
    moves this far less than it moves rates: it is the work, not the wait."""
    if root is None:
        return None
    total = 0
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / _TICKS


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

    async def push_mono(self, repo: str, blobs: Blobs, variant: int, size: int) -> int:
        _, loc = await self.start_upload(repo)
        url = self._abs(loc, digest=blobs.digest(variant, size))
        hdrs = {"Content-Type": OCTET, "Content-Length": str(size)}
        async with self.session.put(url, data=blobs.stream(variant, 0, size), headers=hdrs) as r:
            await self._expect(r, 201)
        return size

    async def push_chunked(
        self, repo: str, blobs: Blobs, variant: int, size: int, chunk: int
    ) -> int:
        _, loc = await self.start_upload(repo)
        for start in range(0, size, chunk):
            end = min(start + chunk, size)
            hdrs = {
                "Content-Type": OCTET,
                "Content-Length": str(end - start),
                "Content-Range": f"{start}-{end - 1}",
            }
            body = blobs.stream(variant, start, end)
            async with self.session.patch(self._abs(loc), data=body, headers=hdrs) as r:
                await self._expect(r, 202)
                loc = r.headers["Location"]
        url = self._abs(loc, digest=blobs.digest(variant, size))
        async with self.session.put(url, headers={"Content-Length": "0"}) as r:
            await self._expect(r, 201)
        return size

    async def pull(self, repo: str, digest: str, size: int) -> int:
        n = 0
        async with self.session.get(f"{self.base}/v2/{repo}/blobs/{digest}") as r:
            await self._expect(r, 200)
            async for data in r.content.iter_any():
                n += len(data)
        if n != size:
            raise BenchError(f"{self.name}: GET blob gave {n} bytes, not {size}")
        return n

    def pull_raw(self, repo: str, digest: str, buf: memoryview, size: int) -> int:
        """Blocking GET over a plain socket, recv_into one buffer: ~40% cheaper than aiohttp."""
        url = URL(self.base)
        with socket.create_connection((url.host or "127.0.0.1", url.port or 80), 30) as s:
            req = f"GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            s.sendall((req + "Connection: close\r\n\r\n").encode())
            n = 0
            while (end := bytes(buf[: min(n, 16384)]).find(b"\r\n\r\n")) < 0:
                if n >= 16384 or not (k := s.recv_into(buf[n:16384])):
                    raise BenchError(f"{self.name}: bad response head")
                n += k
            head = bytes(buf[:end]).decode("latin-1").lower()
            if not head.startswith(("http/1.1 200", "http/1.0 200")):
                raise BenchError(f"{self.name}: raw GET blob: {head.splitlines()[0]}")
            m = re.search(r"^content-length:\s*(\d+)", head, re.M)
            got, want = n - end - 4, int(m.group(1)) if m else None
            while (want is None or got < want) and (k := s.recv_into(buf)):
                got += k
        if got < size:  # >: chunked transfer-encoding framing, counted but harmless
            raise BenchError(f"{self.name}: raw GET blob gave {got} bytes, not {size}")
        return size

    async def put_small(self, repo: str, data: bytes, mount_from: str | None = None) -> None:
        query = {"mount": sha(data), "from": mount_from} if mount_from else {}
        status, loc = await self.start_upload(repo, **query)
        if status == 201:  # mounted
            return
        hdrs = {"Content-Type": OCTET}
        async with self.session.put(self._abs(loc, digest=sha(data)), data=data, headers=hdrs) as r:
            await self._expect(r, 201)

    async def put_manifest(self, repo: str, ref: str, body: bytes) -> None:
        url = f"{self.base}/v2/{repo}/manifests/{ref}"
        async with self.session.put(url, data=body, headers={"Content-Type": OCI_MANIFEST}) as r:
            await self._expect(r, 201)


async def bounded(n: int, jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    sem = asyncio.Semaphore(n)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def setup(reg: Reg, tag_counts: Sequence[int], n_repos: int) -> None:
    """Untimed: blobs + manifests for the manifest, tags-list and catalog workloads.

    Each tag count gets its own repository, ``bench/tags-<count>``.
    """
    for data in (CONFIG, LAYER):
        await reg.put_small("bench/m", data)
        await reg.put_small("bench/put", data, "bench/m")
        for n in tag_counts:
            await reg.put_small(f"bench/tags-{n}", data, "bench/m")
    await reg.put_manifest("bench/m", "latest", manifest("base"))
    body = manifest("tags")
    for n in tag_counts:
        tag = partial(reg.put_manifest, f"bench/tags-{n}", body=body)
        await bounded(16, [partial(tag, ref=f"t{i:04d}") for i in range(n)])

    async def make_repo(i: int) -> None:
        repo = f"bench/cat/r{i:04d}"
        for data in (CONFIG, LAYER):
            await reg.put_small(repo, data, "bench/m")
        await reg.put_manifest(repo, "latest", body)

    await bounded(16, [partial(make_repo, i) for i in range(n_repos)])


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
    async with aiohttp.ClientSession(
        connector=conn, timeout=TIMEOUT, auto_decompress=False
    ) as session:
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
                    async with session.request(
                        spec.method, url, data=body, headers=spec.headers
                    ) as r:
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


async def run_rate(
    spec: Spec, conc: int, duration: float, pool: ProcessPoolExecutor | None, procs: int
) -> Rate:
    if pool is None or procs <= 1 or conc <= 1:
        return await rate_loop(spec, conc, 0.0, duration, "p0")
    loop, start_at = asyncio.get_running_loop(), time.time() + 0.5
    shares = [conc // procs + (1 if p < conc % procs else 0) for p in range(procs)]
    parts = await asyncio.gather(
        *(
            loop.run_in_executor(pool, rate_proc, spec, n, start_at, duration, f"p{p}")
            for p, n in enumerate(shares)
            if n
        )
    )
    return Rate(
        sum(p.ok for p in parts),
        sum(p.errors for p in parts),
        max(p.elapsed for p in parts),
        max(p.cpu for p in parts),
    )


def run_wrk(spec: Spec, conc: int, duration: float, threads: int, tmp: Path) -> Rate:
    lua = tmp / "wrk.lua"
    lines = [f'wrk.method = "{spec.method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in spec.headers.items()]
    lua.write_text("\n".join(lines) + "\n")
    argv = [
        "wrk",
        f"-t{min(threads, conc)}",
        f"-c{conc}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        spec.url,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)\b", out)
    if not m:
        raise BenchError(f"cannot parse wrk output:\n{out}")
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    errors = sum(
        int(x)
        for x in re.findall(
            r"(?:Non-2xx or 3xx responses|connect|read|write|"
            r"timeout):? (\d+)",
            out,
        )
    )
    return Rate(int(m.group(1)) - errors, errors, float(m.group(2)) * scale, 0.0)
