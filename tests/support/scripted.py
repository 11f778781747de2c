"""A small HTTP(S) server on 127.0.0.1 that answers what a test scripts, and records every
request it gets: a hostile registry (bad digests, redirects, foreign realms), or the
stranger a credential must never reach. Real sockets, so the real CLI talks to it."""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # with the query
    headers: dict[str, str]  # lower-case names


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
                if length:
                    self.rfile.read(length)
                seen = Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
                )
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
