"""Run the app: one listening socket, pre-forked worker processes (as gunicorn does).

Each worker has its own event loop on the shared socket, so manifest and metadata
requests use every core. The parent only supervises: it restarts a worker that dies and
stops them all on SIGTERM/SIGINT.
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

log = logging.getLogger("hatchway.server")
access_log = logging.getLogger("hatchway.access")


def bind(config: Config) -> socket.socket:
    host, port = config.http.host_port()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


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


async def _run_worker(
    config: Config, sock: socket.socket, ctx: ssl.SSLContext | None, factory: AppFactory, index: int
) -> None:
    app = factory(config, index)
    runner = web.AppRunner(app, access_log=None if config.log.accesslog.disabled else access_log)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ctx)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
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
        await runner.cleanup()


def run_worker(
    config: Config, sock: socket.socket, ctx: ssl.SSLContext | None, factory: AppFactory, index: int
) -> None:
    asyncio.run(_run_worker(config, sock, ctx, factory, index))


def serve(config: Config, factory: AppFactory, workers: int) -> None:
    sock = bind(config)
    ctx = tls_context(config)
    if workers <= 1:
        run_worker(config, sock, ctx, factory, -1)
        return
    children: dict[int, int] = {}

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = 0
            try:
                run_worker(config, sock, ctx, factory, index)
            except BaseException:
                log.exception("worker %d crashed", index)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(workers):
        spawn(index)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, -1)
        if not stopping and index >= 0:
            log.error("worker %d exited (status %d); restarting", index, status)
            time.sleep(0.2)
            spawn(index)
