"""Run the app: one listening socket, pre-forked worker processes (as gunicorn does).

Each worker has its own event loop on the shared socket, so manifest and metadata
requests use every core. The parent only supervises: it restarts a worker that dies,
stops them all on SIGTERM/SIGINT and passes SIGHUP on, which makes each worker re-read
what it can without a restart (the access rules).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable

from aiohttp import web

from hatchway.config.model import Config
from hatchway.config.observability import split_host_port
from hatchway.http import heap
from hatchway.http.debug import create_debug_app
from hatchway.http.metrics import access_logger_class
from hatchway.http.state import ON_RELOAD
from hatchway.observability import metrics

log = logging.getLogger("hatchway.server")
access_log = logging.getLogger("hatchway.access")


def bind(
    config: Config,
    *,
    reuse_port: bool = False,
    listen: bool = True,
    address: tuple[str, int] | None = None,
) -> socket.socket:
    host, port = address or config.http.host_port()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(1024)
    sock.setblocking(False)
    return sock


def _reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


def tls_context(config: Config) -> ssl.SSLContext | None:
    tls = config.http.tls
    if tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if tls.minimumtls == "tls1.3" else ssl.TLSVersion.TLSv1_2
    )
    ctx.load_cert_chain(tls.certificate, tls.key)
    return ctx


AppFactory = Callable[[Config, int], web.Application]


def _reloader(app: web.Application) -> Callable[[], None]:
    def reload() -> None:
        log.info("SIGHUP: reloading")
        for callback in app.get(ON_RELOAD, ()):
            try:
                callback()
            except Exception:
                log.exception("reload failed")

    return reload


def bind_debug(config: Config) -> socket.socket | None:
    """The debug server's socket (``http.debug.addr``), bound before workers fork."""
    addr = config.http.debug.addr
    if addr is None:
        return None
    try:
        return bind(config, address=split_host_port(addr))
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror} (http.debug.addr {addr})") from None


async def _run_worker(
    config: Config,
    sock: socket.socket,
    ctx: ssl.SSLContext | None,
    factory: AppFactory,
    index: int,
    debug: socket.socket | None = None,
) -> None:
    app = factory(config, index)
    # The access logger also counts requests for /metrics, so with metrics on it runs
    # even when the access log is off (it then writes no line).
    log_lines = not config.log.accesslog.disabled
    runner = web.AppRunner(
        app,
        access_log=access_log if log_lines or config.http.debug.prometheus.enabled else None,
        access_log_class=access_logger_class(
            log_lines=log_lines, metered=config.http.debug.prometheus.enabled
        ),
    )
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ctx)
    await site.start()
    debug_runner = None
    if debug is not None:
        debug_runner = web.AppRunner(create_debug_app(config, app), access_log=None)
        await debug_runner.setup()
        await web.SockSite(debug_runner, debug).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reloader(app))
    parent = os.getppid()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                # An orphaned worker (supervisor killed -9) must not keep serving.
                if index >= 0 and os.getppid() != parent:
                    break
    finally:
        if debug_runner is not None:
            await debug_runner.cleanup()
        await runner.cleanup()
        metrics.flush()  # this worker's last second of counts


def run_worker(
    config: Config,
    sock: socket.socket,
    ctx: ssl.SSLContext | None,
    factory: AppFactory,
    index: int,
    debug: socket.socket | None = None,
) -> None:
    heap.keep_buffers()
    asyncio.run(_run_worker(config, sock, ctx, factory, index, debug))


class _Supervisor:
    """Forks the workers, restarts one that dies, stops them all on a signal."""

    def __init__(self, run: Callable[[int], None], workers: int) -> None:
        self._run = run
        self._workers = workers
        self._children: dict[int, tuple[int, float]] = {}
        self._stopping = False
        self._quick_deaths = 0
        self.exit_code = 0

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            # Until its loop handles SIGHUP, a worker ignores it (the default would kill it).
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            code = 0
            try:
                self._run(index)
            except BaseException:
                log.exception("worker %d crashed", index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self._children[pid] = (index, time.monotonic())

    def stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        self._stopping = True
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def reload(self, signum: int = signal.SIGHUP, frame: object = None) -> None:
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    def _reap(self, pid: int, status: int) -> None:
        index, started = self._children.pop(pid, (-1, 0.0))
        metrics.process_exited(pid)  # its live gauges go; its counters stay counted
        if self._stopping or index < 0:
            return
        # A worker that keeps dying at once (bad storage, bad certificate) would be
        # restarted forever; give up instead and let the operator see why.
        self._quick_deaths = self._quick_deaths + 1 if time.monotonic() - started < 2 else 0
        if self._quick_deaths >= 5:
            log.error("workers keep failing at start; stopping")
            self.exit_code = 1
            self.stop()
            return
        log.error("worker %d exited (status %d); restarting", index, status)
        time.sleep(0.2)
        self._spawn(index)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, self.reload)
        for index in range(self._workers):
            self._spawn(index)
        while self._children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            self._reap(pid, status)
        return self.exit_code


def serve(config: Config, factory: AppFactory, workers: int) -> None:
    ctx = tls_context(config)
    if workers <= 1:
        run_worker(config, bind(config), ctx, factory, -1, bind_debug(config))
        return
    # Worker 0 serves the debug address; the socket outlives its restarts.
    debug = bind_debug(config)

    def debug_for(index: int) -> socket.socket | None:
        if index == 0 or debug is None:
            return debug
        debug.close()
        return None

    if _reuse_port_supported():
        # Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads
        # connections evenly; with one shared socket, whichever worker wakes first
        # takes them all. The supervisor's bound (not listening) socket holds the
        # port and reports "address in use" before anything forks.
        holder = bind(config, reuse_port=True, listen=False)

        def run(index: int) -> None:
            holder.close()
            sock = bind(config, reuse_port=True)
            run_worker(config, sock, ctx, factory, index, debug_for(index))

    else:
        shared = bind(config)

        def run(index: int) -> None:
            run_worker(config, shared, ctx, factory, index, debug_for(index))

    code = _Supervisor(run, workers).run()
    if code:
        raise SystemExit(code)
