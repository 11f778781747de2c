"""An in-memory registry behind an ``httpx`` transport that can fail on purpose: cut a
PATCH short after some bytes (as a dropped connection does), answer 5xx after storing
part of a chunk, or expire every token mid-upload. For the client's resume logic, which a
real server cannot be made to fail at exact byte offsets."""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

BASE = "https://fake.test"
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[0-9a-f-]*)$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass
class Fault:
    """At ``at`` bytes into the upload: ``cut`` (connection drops), ``500``, or ``expire``
    (every token issued so far stops working, so the next request gets a 401)."""

    at: int
    kind: str
    fired: bool = False


@dataclass
class FakeRegistry:
    token_auth: bool = False
    blobs: dict[str, bytes] = field(default_factory=dict)
    sessions: dict[str, bytearray] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    tokens_issued: int = 0
    barrier: threading.Barrier | None = None
    download_cut_at: int | None = None
    manifests: dict[str, bytes] = field(default_factory=dict)
    _valid: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, auth: httpx.Auth | None = None) -> httpx.Client:
        return httpx.Client(transport=_Transport(self), base_url=BASE, auth=auth)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Route ``request``; a dropped connection is logged with status 0."""
        try:
            response = self._route(request)
        except httpx.TransportError:
            with self._lock:
                self.log.append((request.method, request.url.path, 0))
            raise
        with self._lock:
            self.log.append((request.method, request.url.path, response.status_code))
        return response

    def _authorized(self, request: httpx.Request) -> bool:
        if not self.token_auth:
            return True
        header = request.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") in self._valid

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/token":
            with self._lock:
                self.tokens_issued += 1
                token = f"tok-{self.tokens_issued}"
                self._valid.add(token)
            return httpx.Response(200, json={"token": token, "expires_in": 300})
        if not self._authorized(request):
            challenge = f'Bearer realm="{BASE}/token",service="fake"'
            return httpx.Response(
                401, headers={"WWW-Authenticate": challenge}, json=_err("UNAUTHORIZED")
            )
        if path == "/v2/":
            return httpx.Response(200, json={})
        if m := _BLOB.match(path):
            data = self.blobs.get(m["digest"])
            if data is None:
                return httpx.Response(404, json=_err("BLOB_UNKNOWN"))
            return self._blob(request, data)
        if m := _MANIFEST.match(path):
            if request.method != "PUT":
                return httpx.Response(405)
            body = request.read()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self.manifests[m["ref"]] = self.manifests[digest] = body
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        if m := _UPLOAD.match(path):
            return self._upload(request, m["name"], m["id"])
        return httpx.Response(404, json=_err("NAME_UNKNOWN"))

    def _blob(self, request: httpx.Request, data: bytes) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Length": str(len(data))})
        wanted = request.headers.get("Range")
        if wanted:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return httpx.Response(206, headers=headers, content=data[start:])
        if self.download_cut_at is not None:
            cut, self.download_cut_at = self.download_cut_at, None
            return httpx.Response(200, stream=_CutStream(data[:cut]))
        return httpx.Response(200, content=data)

    def _upload(self, request: httpx.Request, name: str, upload_id: str) -> httpx.Response:
        if request.method == "POST":
            upload_id = str(uuid.uuid4())
            self.sessions[upload_id] = bytearray()
            return self._accepted(name, upload_id, 202)
        session = self.sessions.get(upload_id)
        if session is None:
            return httpx.Response(404, json=_err("BLOB_UPLOAD_UNKNOWN"))
        if request.method == "GET":
            return self._accepted(name, upload_id, 204)
        if request.method == "PATCH":
            start = int(request.headers["Content-Range"].split("-")[0])
            if start != len(session):
                return httpx.Response(416, json=_err("RANGE_INVALID"))
            if self.barrier is not None:
                self.barrier.wait(timeout=10)
            return self._patch(request, name, upload_id, session)
        if request.method == "PUT":
            digest = request.url.params["digest"]
            if "sha256:" + hashlib.sha256(session).hexdigest() != digest:
                return httpx.Response(400, json=_err("DIGEST_INVALID"))
            self.blobs[digest] = bytes(session)
            del self.sessions[upload_id]
            return httpx.Response(201, headers={"Location": f"/v2/{name}/blobs/{digest}"})
        return httpx.Response(405)

    def _patch(
        self, request: httpx.Request, name: str, upload_id: str, session: bytearray
    ) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        for piece in request.stream:
            fault = next((f for f in self.faults if not f.fired), None)
            if fault is not None and len(session) + len(piece) >= fault.at:
                fault.fired = True
                if fault.kind == "expire":
                    self._valid.clear()  # this request got in; the next ones are refused
                else:
                    session += piece[: fault.at - len(session)]
                    if fault.kind == "cut":
                        raise httpx.ReadError("connection reset by the fake registry")
                    return httpx.Response(500, json=_err("UNKNOWN"))
            session += piece
        return self._accepted(name, upload_id, 202)

    def _accepted(self, name: str, upload_id: str, status: int) -> httpx.Response:
        size = len(self.sessions[upload_id])
        headers = {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Range": f"0-{max(size - 1, 0)}",
        }
        return httpx.Response(status, headers=headers)

    def upload_patches(self) -> list[tuple[str, int]]:
        return [(p, s) for m, p, s in self.log if m == "PATCH"]


class _Transport(httpx.BaseTransport):
    """``MockTransport`` reads every request body before the handler sees it, which makes a
    streamed upload replayable; this one hands the stream over as a network would."""

    def __init__(self, registry: FakeRegistry) -> None:
        self._registry = registry

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._registry.handle(request)


class _CutStream(httpx.SyncByteStream):
    """A body that stops after ``data`` the way a dropped connection does."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data
        raise httpx.ReadError("connection reset mid-download by the fake registry")


def _err(code: str) -> dict[str, object]:
    return {"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}
