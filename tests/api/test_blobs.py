"""Blob HEAD/GET/DELETE (OCI distribution-spec v1.1, end-2, end-10) against a real server."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.oci import errors, push_blob, range_end, sha256, start_upload
from tests.support.server import Server, raw_request, start_server
from tests.support.tls import self_signed_cert, trusting

# Every byte differs from its neighbours, so an off-by-one in a range shows.
DATA = bytes(i % 251 for i in range(1000))
UNKNOWN = "sha256:" + "0" * 64
MiB = 1024 * 1024


def assert_oci_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert errors(r) == [code], r.text


# -- HEAD / GET -------------------------------------------------------------------------


def test_head_reports_length_and_digest_without_body(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, DATA)
    r = client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.content == b""


def test_get_serves_the_exact_bytes(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, DATA)
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def _server_congestion_control(server_port: int, client_port: int) -> list[str]:
    """``ss``'s view of the server end of one loopback connection, as words."""
    flt = f"( sport = :{server_port} and dport = :{client_port} )"
    out = subprocess.run(
        ["ss", "-tinH", "state", "established", flt],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_a_loopback_download_is_not_paced(server: Server, client: httpx.Client, repo: str) -> None:
    """BBR, this machine's default, paces a loopback download at a rate guessed from
    CPU scheduling, which made pull throughput swing; hatchway sends with reno there."""
    digest = push_blob(client, repo, os.urandom(16 * MiB))
    host, port = server.addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        request = f"GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {server.addr}\r\n\r\n"
        sock.sendall(request.encode())
        # The head has arrived, so the server is sending the body (blocked on us).
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        words = _server_congestion_control(int(port), sock.getsockname()[1])
    assert words, "ss did not find the connection"
    assert not any(w.startswith("bbr") for w in words), words
    assert "reno" in words or "cubic" in words, words


def test_empty_blob_is_served(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"")
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["Content-Length"] == "0"
    assert r.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=5-14", 5, 14),
        ("bytes=0-0", 0, 0),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=500-99999", 500, 999),  # a last-pos past the end is clamped (RFC 9110 14.1.1)
        ("bytes=0-999", 0, 999),
    ],
)
def test_range_get_is_206_with_content_range(
    client: httpx.Client, repo: str, header: str, first: int, last: int
) -> None:
    digest = push_blob(client, repo, DATA)
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 206, r.text
    assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert r.headers["Content-Length"] == str(last - first + 1)
    assert r.content == DATA[first : last + 1]
    assert r.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000"])
def test_unsatisfiable_range_is_416(client: httpx.Client, repo: str, header: str) -> None:
    digest = push_blob(client, repo, DATA)
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"


def test_range_with_unknown_unit_is_ignored(client: httpx.Client, repo: str) -> None:
    # RFC 9110 14.2: "An origin server MUST ignore a Range header field that contains a
    # range unit it does not understand" -> the full representation, 200.
    digest = push_blob(client, repo, DATA)
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "items=0-5"})
    assert r.status_code == 200
    assert r.content == DATA


def test_satisfiable_multi_range_is_not_416(client: httpx.Client, repo: str) -> None:
    # RFC 9110 15.5.17: 416 means none of the ranges overlap the representation. A server
    # may serve multipart/byteranges (206) or ignore the header (200), not refuse it.
    digest = push_blob(client, repo, DATA)
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=1-2,5-6"})
    assert r.status_code in (200, 206)
    if r.status_code == 200:
        assert r.content == DATA


def test_unknown_digest_is_blob_unknown(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, DATA)  # the repository exists; the blob does not
    assert_oci_error(client.get(f"/v2/{repo}/blobs/{UNKNOWN}"), 404, "BLOB_UNKNOWN")
    r = client.head(f"/v2/{repo}/blobs/{UNKNOWN}")
    assert r.status_code == 404
    assert r.content == b""
    assert_oci_error(client.get(f"/v2/t/never-pushed/blobs/{UNKNOWN}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:zzzz",
        "sha256:" + "g" * 64,  # not hex
        "sha256:" + "A" * 64,  # upper-case hex is not the canonical encoding
        "sha256:" + "0" * 63,
        "sha256:" + "0" * 65,
        "sha512:" + "0" * 64,  # sha512 with a sha256-sized hex
        "sha512:" + "0" * 127,
        "md5:" + "0" * 32,
        "sha256",
        "notadigest",
        ":" + "0" * 64,
    ],
)
def test_invalid_digest_is_digest_invalid(client: httpx.Client, repo: str, digest: str) -> None:
    assert_oci_error(client.get(f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 400
    assert_oci_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 400, "DIGEST_INVALID")


def test_sha512_blob_is_served_by_its_sha512_digest(client: httpx.Client, repo: str) -> None:
    digest = "sha512:" + hashlib.sha512(DATA).hexdigest()
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=DATA)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["Docker-Content-Digest"] == digest


def test_blob_is_visible_only_in_the_repository_it_was_pushed_to(
    client: httpx.Client, repo: str
) -> None:
    digest = push_blob(client, f"{repo}/a/x", DATA)
    push_blob(client, f"{repo}/b/y", b"b/y exists as a repository")
    for other in (f"{repo}/b/y", f"{repo}/a", f"{repo}/a/x/z"):
        assert_oci_error(client.get(f"/v2/{other}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
        assert client.head(f"/v2/{other}/blobs/{digest}").status_code == 404
        r = client.get(f"/v2/{other}/blobs/{digest}", headers={"Range": "bytes=0-9"})
        assert_oci_error(r, 404, "BLOB_UNKNOWN")
        assert_oci_error(client.delete(f"/v2/{other}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.get(f"/v2/{repo}/blobs/{digest}").status_code == 404
    assert client.get(f"/v2/{repo}/a/x/blobs/{digest}").content == DATA


def test_wrong_methods_on_a_blob_are_unsupported(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, DATA)
    for method in ("PUT", "PATCH", "POST"):
        r = client.request(method, f"/v2/{repo}/blobs/{digest}", content=b"x")
        assert_oci_error(r, 405, "UNSUPPORTED")
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == DATA


# -- DELETE -----------------------------------------------------------------------------


def test_delete_is_202_then_the_blob_is_unknown(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, f"{repo}/a", DATA)
    push_blob(client, f"{repo}/b", DATA)  # the same content, linked in a second repository
    r = client.delete(f"/v2/{repo}/a/blobs/{digest}")
    assert r.status_code == 202, r.text
    assert r.headers["Content-Length"] == "0"
    assert_oci_error(client.get(f"/v2/{repo}/a/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{repo}/a/blobs/{digest}").status_code == 404
    assert_oci_error(client.delete(f"/v2/{repo}/a/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    # Deleting from one repository leaves the content readable where it is still linked.
    assert client.get(f"/v2/{repo}/b/blobs/{digest}").content == DATA
    # And it can be pushed again.
    push_blob(client, f"{repo}/a", DATA)
    assert client.get(f"/v2/{repo}/a/blobs/{digest}").content == DATA


def test_delete_of_unknown_blob_is_blob_unknown(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, DATA)
    assert_oci_error(client.delete(f"/v2/{repo}/blobs/{UNKNOWN}"), 404, "BLOB_UNKNOWN")


def test_delete_disabled_is_405_unsupported(tmp: Path) -> None:
    server = start_server(tmp, config="storage:\n  delete:\n    enabled: false\n")
    try:
        client = server.client
        digest = push_blob(client, "t/nodelete", DATA)
        assert_oci_error(client.delete(f"/v2/t/nodelete/blobs/{digest}"), 405, "UNSUPPORTED")
        assert client.get(f"/v2/t/nodelete/blobs/{digest}").content == DATA
    finally:
        server.stop()


# -- sendfile(2) and its fallback -------------------------------------------------------


@pytest.fixture(scope="module")
def nosendfile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose aiohttp copies file bodies through userspace instead of sendfile(2)."""
    srv = start_server(tmp_path_factory.mktemp("nosendfile"), env={"AIOHTTP_NOSENDFILE": "1"})
    yield srv
    srv.stop()


@pytest.mark.parametrize("path", ["sendfile", "fallback"])
def test_large_blob_download_is_byte_identical(
    server: Server, nosendfile_server: Server, repo: str, path: str
) -> None:
    client = (server if path == "sendfile" else nosendfile_server).client
    data = os.urandom(5 * MiB + 12345)
    digest = push_blob(client, repo, data)
    r = client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.headers["Content-Length"] == str(len(data))

    received = bytearray()
    with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as r:
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(len(data))
        for chunk in r.iter_raw():
            received += chunk
    assert sha256(bytes(received)) == digest
    assert received == data

    # Ranges that straddle 1 MiB boundaries, the start, and the end.
    for first, last in ((MiB - 3, 3 * MiB + 4), (0, 2 * MiB), (len(data) - MiB - 1, len(data) - 1)):
        r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={first}-{last}"})
        assert r.status_code == 206
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert r.content == data[first : last + 1]
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={4 * MiB}-"})
    assert r.status_code == 206
    assert r.content == data[4 * MiB :]


# -- TLS --------------------------------------------------------------------------------


def test_push_and_pull_over_tls(tmp: Path) -> None:
    cert, key = self_signed_cert(tmp)
    server = start_server(
        tmp,
        config=f"http:\n  tls:\n    certificate: {cert}\n    key: {key}\n",
        scheme="https",
    )
    try:
        assert server.url.startswith("https://")
        with httpx.Client(base_url=server.url, verify=trusting(cert), timeout=30) as client:
            assert client.get("/v2/").status_code == 200
            data = os.urandom(2 * MiB + 7)
            digest = sha256(data)
            # A chunked push: POST, two PATCHes, PUT with the last chunk.
            location = start_upload(client, "t/tls")
            parts = (data[:MiB], data[MiB : 2 * MiB], data[2 * MiB :])
            offset = 0
            for part in parts[:2]:
                end = offset + len(part) - 1
                r = client.patch(
                    location,
                    content=part,
                    headers={
                        "Content-Range": f"{offset}-{end}",
                        "Content-Type": "application/octet-stream",
                    },
                )
                assert r.status_code == 202, r.text
                assert range_end(r) == end
                location, offset = r.headers["Location"], end + 1
            r = client.put(location, params={"digest": digest}, content=parts[2])
            assert r.status_code == 201, r.text
            r = client.get(r.headers["Location"])
            assert r.status_code == 200
            assert r.content == data
            r = client.get(f"/v2/t/tls/blobs/{digest}", headers={"Range": "bytes=100-199"})
            assert r.status_code == 206
            assert r.content == data[100:200]
        # Plain HTTP on the TLS port is not served.
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url.replace("https://", "http://") + "/v2/", timeout=5)
    finally:
        server.stop()


# -- hostile paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../../etc/blobs/{d}",
        "/v2/%2e%2e/%2e%2e/etc/blobs/{d}",
        "/v2/{repo}/%2e%2e/%2e%2e/blobs/{d}",
        "/v2/{repo}/../x/blobs/{d}",
        "/v2/t%2F..%2F..%2Fetc/blobs/{d}",
        "/v2/./t/x/blobs/{d}",
        "/v2//t/x/blobs/{d}",
        "/v2/{repo}/blobs/..%2F..%2F..%2Fetc%2Fpasswd",
        "/v2/{repo}/blobs/sha256:..%2F..%2F{hex58}",
        "/v2/{repo}/blobs/sha256:%2e%2e",
        "/v2/{repo}/blobs/%00",
        "/v2/{repo}/blobs/uploads/..%2F..%2Fx",
        "/v2/{repo}/blobs/uploads/%2e%2e",
        "/v2/{repo}/blobs/uploads/%00",
        "/v2/" + "a/" * 200 + "blobs/{d}",
    ],
)
def test_hostile_paths_are_4xx_oci_errors(server: Server, repo: str, path: str) -> None:
    digest = push_blob(server.client, repo, DATA)
    hex_ = digest.split(":", 1)[1]
    target = path.format(d=digest, repo=repo, hex58=hex_[:58])
    for method in ("GET", "HEAD", "DELETE"):
        r = raw_request(server, method, target)
        assert 400 <= r.status_code < 500, (method, target, r.status_code, r.text)
        if method != "HEAD":
            assert r.headers["Content-Type"].startswith("application/json"), r.text
            assert errors(r), r.text
    assert server.client.get(f"/v2/{repo}/blobs/{digest}").content == DATA
