"""A small HTTP(S) server on 127.0.0.1 that answers what a test scripts, and records every
request it gets: a hostile registry (bad digests, redirects, foreign realms), or the
stranger a credential must never reach. Real sockets, so the real CLI talks to it."""

from __future__ import annotations

import hashlib
import json
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # with the query
    headers: dict[str, str]  # lower-case names
    body: bytes = b""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Route = Callable[[Seen], Reply]


class ScriptedServer:
    """``with ScriptedServer(route) as s:`` serves ``route(request)`` at ``s.url``."""

    def __init__(self, route: Route, *, tls: tuple[Path, Path] | None = None) -> None:
        self.route = route
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen = Seen(self.command, self.path, headers, body)
                outer.seen.append(seen)
                reply = outer.route(seen)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.addr = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.url = f"{scheme}://{self.addr}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def authorizations(self) -> list[str]:
        """Every ``Authorization`` header this server was sent."""
        return [s.headers["authorization"] for s in self.seen if "authorization" in s.headers]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_bytes(config: dict[str, object], layers: list[dict[str, object]]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    return json.dumps(doc).encode()


def registry_route(
    manifests: dict[str, tuple[bytes, str]],
    blobs: dict[str, bytes],
    extra: Route | None = None,
) -> Route:
    """An open registry serving ``manifests`` (by tag or digest: bytes, media type) and
    ``blobs`` (by digest); ``extra`` answers first where it returns a non-404."""

    def route(seen: Seen) -> Reply:
        if extra is not None and (reply := extra(seen)).status != 404:
            return reply
        path = seen.path.split("?", 1)[0]
        if path == "/v2/":
            return Reply(200, {"Content-Type": "application/json"}, b"{}")
        for reference, (data, media_type) in manifests.items():
            if path.endswith(f"/manifests/{reference}"):
                headers = {"Content-Type": media_type, "Docker-Content-Digest": sha256(data)}
                return Reply(200, headers, data)
        for digest, data in blobs.items():
            if path.endswith(f"/blobs/{digest}"):
                return Reply(200, {"Content-Type": "application/octet-stream"}, data)
        return Reply(404, {"Content-Type": "application/json"}, b'{"errors":[]}')

    return route


_HOP_BY_HOP = {"connection", "content-length", "content-encoding", "transfer-encoding", "host"}


def forward_to(base_url: str) -> Route:
    """A route that passes each request on to ``base_url`` (a real ``hatchway serve``)
    as it came, credentials included, and returns the answer as it is."""

    def route(seen: Seen) -> Reply:
        headers = {k: v for k, v in seen.headers.items() if k not in _HOP_BY_HOP}
        with httpx.Client(base_url=base_url, verify=False, timeout=30) as client:
            r = client.request(seen.method, seen.path, headers=headers, content=seen.body)
        kept = {k: v for k, v in r.headers.items() if k.lower() not in _HOP_BY_HOP}
        return Reply(r.status_code, kept, r.content)

    return route


class TunnelProxy:
    """An HTTP ``CONNECT`` proxy on 127.0.0.1 that tunnels every connection to ``target``
    (``127.0.0.1:port``) whatever host was asked for: so a client can reach a local TLS
    server by a name that is not loopback (``HTTPS_PROXY``), with no DNS. Records the
    names asked for in :attr:`asked`."""

    def __init__(self, target: str) -> None:
        self.asked: list[str] = []
        host, port = target.rsplit(":", 1)
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client: socket.socket = self.request
                head = b""
                while b"\r\n\r\n" not in head:
                    piece = client.recv(4096)
                    if not piece:
                        return
                    head += piece
                line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
                if len(line) < 2 or line[0] != "CONNECT":
                    client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                outer.asked.append(line[1])
                with socket.create_connection((host, int(port))) as upstream:
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    _pipe(client, upstream)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TunnelProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    while True:
        readable, _, _ = select.select([a, b], [], [], 30)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)
