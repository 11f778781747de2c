"""A real nginx (Debian's ``nginx-light``) as a reverse proxy in front of a test server.

Never skipped: ``scripts/test`` installs it; without it the test fails and says so.
It runs in the foreground as one process (``master_process off``) with every path in a
temporary directory, so it needs no root and leaves nothing behind. The proxy settings
are the usual ones for a registry: pass the client's Host, append the client's address to
``X-Forwarded-For``, say the scheme in ``X-Forwarded-Proto``, stream bodies unbuffered.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

_CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 0;
    {upstreams}
    server {{
        listen 127.0.0.1:{port}{ssl};
        {certificates}
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
            proxy_buffering off;
            {next_upstream}
            {extra}
        }}
    }}
}}
"""


@dataclass
class Nginx:
    url: str
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_nginx(
    directory: Path,
    upstream: str | Sequence[str],
    *,
    tls: tuple[Path, Path] | None = None,
    extra: str = "",
) -> Nginx:
    """nginx on 127.0.0.1, proxying to ``upstream`` (HOST:PORT); TLS with (cert, key);
    ``extra``: more directives for the proxying location (e.g. ``add_header``).

    Several upstreams are balanced round robin with no session affinity, and an
    idempotent request a replica failed (refused, reset, 502) goes to the next one."""
    if NGINX is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    certificates = f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};" if tls else ""
    upstreams = next_upstream = ""
    if not isinstance(upstream, str):
        servers = " ".join(f"server {u} max_fails=1 fail_timeout=2s;" for u in upstream)
        upstreams = f"upstream replicas {{ {servers} keepalive 32; }}"
        next_upstream = "proxy_next_upstream error timeout http_502 http_503;"
        upstream = "replicas"
    config = directory / "nginx.conf"
    config.write_text(
        _CONFIG.format(
            tmp=directory,
            port=port,
            ssl=" ssl" if tls else "",
            certificates=certificates,
            upstream=upstream,
            upstreams=upstreams,
            next_upstream=next_upstream,
            extra=extra,
        )
    )
    log = (directory / "stdout.log").open("wb")
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            errors = (directory / "error.log").read_text(errors="replace")
            raise RuntimeError(f"nginx exited: {errors}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            scheme = "https" if tls else "http"
            return Nginx(f"{scheme}://127.0.0.1:{port}", process, directory)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("nginx did not start")
