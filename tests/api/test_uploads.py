"""Blob uploads (OCI distribution-spec v1.1, end-4a/4b, end-5, end-6, end-11, end-13, end-14).

Everything goes through a real ``hatchway serve``; the shared ``server`` has two worker
processes, so requests on new connections may land on either.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.oci import errors, push_blob, range_end, sha256, start_upload
from tests.support.server import Server, serving_worker, worker_pids

OCTET = {"Content-Type": "application/octet-stream"}
KiB = 1024
MiB = 1024 * KiB


def chunk_of(seed: str, size: int) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def assert_oci_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert errors(r) == [code], r.text


def session_id(location: str) -> str:
    return httpx.URL(location).path.rsplit("/", 1)[1]


def assert_session_response(r: httpx.Response, status: int, repo: str, end: int) -> str:
    """A 202/204 upload response: Location of the session, Range ``0-<end>``, its UUID."""
    assert r.status_code == status, r.text
    location = r.headers["Location"]
    assert httpx.URL(location).path.startswith(f"/v2/{repo}/blobs/uploads/")
    assert r.headers["Docker-Upload-UUID"] == session_id(location)
    assert r.headers["Range"] == f"0-{end}"
    assert r.content == b""
    return location


def assert_created(r: httpx.Response, repo: str, digest: str) -> None:
    """201 for a finished upload or mount: Location of the blob and its digest."""
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == "0"


def assert_blob(client: httpx.Client, repo: str, digest: str, data: bytes) -> None:
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["Docker-Content-Digest"] == digest


def assert_no_blob(client: httpx.Client, repo: str, digest: str) -> None:
    assert_oci_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def patch_chunk(client: httpx.Client, location: str, offset: int, part: bytes) -> httpx.Response:
    return client.patch(
        location,
        content=part,
        headers={**OCTET, "Content-Range": f"{offset}-{offset + len(part) - 1}"},
    )


def status_of(location: str, server: Server) -> httpx.Response:
    """Upload status on a new connection (so possibly on the other worker)."""
    with httpx.Client(base_url=server.url, timeout=30) as one:
        return one.get(location)


# -- monolithic ------------------------------------------------------------------------


def test_single_post_with_digest_is_201(client: httpx.Client, repo: str) -> None:
    data = chunk_of("single", 5000)
    digest = sha256(data)
    r = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTET
    )
    assert_created(r, repo, digest)
    assert client.get(r.headers["Location"]).content == data
    assert_blob(client, repo, digest, data)


def test_single_post_with_wrong_digest_stores_nothing(client: httpx.Client, repo: str) -> None:
    data = chunk_of("wrong", 5000)
    claimed = sha256(b"something else")
    r = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=data, headers=OCTET
    )
    assert_oci_error(r, 400, "DIGEST_INVALID")
    assert_no_blob(client, repo, claimed)
    assert_no_blob(client, repo, sha256(data))


def test_single_post_of_an_empty_blob(client: httpx.Client, repo: str) -> None:
    digest = sha256(b"")
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"")
    assert_created(r, repo, digest)
    assert_blob(client, repo, digest, b"")


def test_empty_bodies_one_after_another(client: httpx.Client, repo: str) -> None:
    # An empty body's reader is shared by every request of a worker: each must end.
    digest = sha256(b"")
    for _ in range(4):
        r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=b"")
        assert_created(r, repo, digest)
        r = client.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202
        r = client.put(r.headers["Location"], params={"digest": digest}, content=b"")
        assert_created(r, repo, digest)
    assert_blob(client, repo, digest, b"")


def test_single_post_with_invalid_digest_is_digest_invalid(client: httpx.Client, repo: str) -> None:
    for bad in ("sha256:xyz", "sha512:abcd", "sha256:" + "G" * 64, "sha256", ""):
        r = client.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": bad}, content=b"abc", headers=OCTET
        )
        assert_oci_error(r, 400, "DIGEST_INVALID")


def test_post_then_put(client: httpx.Client, repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    # An empty session reports Range 0-0, as distribution does (clients read only PATCH's).
    location = assert_session_response(r, 202, repo, 0)
    assert r.headers["Content-Length"] == "0"
    data = chunk_of("post-put", 70 * KiB)
    digest = sha256(data)
    r = client.put(location, params={"digest": digest}, content=data, headers=OCTET)
    assert_created(r, repo, digest)
    assert_blob(client, repo, digest, data)
    # The session is closed.
    assert_oci_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(patch_chunk(client, location, len(data), b"more"), 404, "BLOB_UPLOAD_UNKNOWN")


def test_put_with_no_body_finishes_an_empty_blob(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    digest = sha256(b"")
    assert_created(client.put(location, params={"digest": digest}), repo, digest)
    assert_blob(client, repo, digest, b"")


# -- chunked ---------------------------------------------------------------------------


def test_chunked_patches_then_put_without_body(client: httpx.Client, repo: str) -> None:
    parts = [chunk_of(f"c{i}", size) for i, size in enumerate((64 * KiB, 1, 100 * KiB + 3))]
    data = b"".join(parts)
    location = start_upload(client, repo)
    offset = 0
    for part in parts:
        r = patch_chunk(client, location, offset, part)
        offset += len(part)
        location = assert_session_response(r, 202, repo, offset - 1)
        assert r.headers["Content-Length"] == "0"
        # The status agrees with what the PATCH said.
        assert_session_response(client.get(location), 204, repo, offset - 1)
    r = client.put(location, params={"digest": sha256(data)})
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_last_chunk_in_the_closing_put(client: httpx.Client, repo: str) -> None:
    first, last = chunk_of("first", 40 * KiB), chunk_of("last", 9 * KiB + 1)
    data = first + last
    location = start_upload(client, repo)
    location = assert_session_response(
        patch_chunk(client, location, 0, first), 202, repo, len(first) - 1
    )
    r = client.put(
        location,
        params={"digest": sha256(data)},
        content=last,
        headers={**OCTET, "Content-Range": f"{len(first)}-{len(data) - 1}"},
    )
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_last_chunk_in_put_without_content_range(client: httpx.Client, repo: str) -> None:
    first, last = chunk_of("a", 10 * KiB), chunk_of("b", 3)
    location = start_upload(client, repo)
    location = patch_chunk(client, location, 0, first).headers["Location"]
    r = client.put(location, params={"digest": sha256(first + last)}, content=last, headers=OCTET)
    assert_created(r, repo, sha256(first + last))
    assert_blob(client, repo, sha256(first + last), first + last)


def test_streamed_patches_without_content_range(client: httpx.Client, repo: str) -> None:
    pieces = [chunk_of(f"s{i}", 33 * KiB + i) for i in range(8)]

    def stream(items: list[bytes]) -> Iterator[bytes]:
        yield from items

    location = start_upload(client, repo)
    r = client.patch(location, content=stream(pieces[:5]), headers=OCTET)
    assert r.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in r.request.headers
    size = sum(map(len, pieces[:5]))
    location = assert_session_response(r, 202, repo, size - 1)
    r = client.patch(location, content=stream(pieces[5:7]), headers=OCTET)
    size += sum(map(len, pieces[5:7]))
    location = assert_session_response(r, 202, repo, size - 1)
    assert_session_response(client.get(location), 204, repo, size - 1)
    # The last chunk streamed in the closing PUT as well.
    data = b"".join(pieces)
    r = client.put(
        location, params={"digest": sha256(data)}, content=stream(pieces[7:]), headers=OCTET
    )
    assert r.request.headers["Transfer-Encoding"] == "chunked"
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_upload_status_is_204_with_range(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    assert_session_response(client.get(location), 204, repo, 0)
    patch_chunk(client, location, 0, b"0123456789")
    r = client.get(location)
    assert_session_response(r, 204, repo, 9)


def test_out_of_order_chunk_is_416(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    # The first chunk must begin at 0.
    r = patch_chunk(client, location, 5, b"abcde")
    assert_oci_error(r, 416, "BLOB_UPLOAD_INVALID")
    location = patch_chunk(client, location, 0, b"0123456789").headers["Location"]
    for offset in (0, 5, 9, 11, 1000):  # a retried chunk, an overlap, a gap
        r = patch_chunk(client, location, offset, b"xxxxxxxxxx")
        assert r.status_code == 416, (offset, r.text)
        assert errors(r) == ["BLOB_UPLOAD_INVALID"]
    # Nothing was written by the refused chunks; the next in-order chunk is accepted.
    assert_session_response(client.get(location), 204, repo, 9)
    location = assert_session_response(patch_chunk(client, location, 10, b"abc"), 202, repo, 12)
    r = client.put(location, params={"digest": sha256(b"0123456789abc")})
    assert_created(r, repo, sha256(b"0123456789abc"))


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_content_range_not_matching_content_length_is_400(
    client: httpx.Client, repo: str, method: str
) -> None:
    location = start_upload(client, repo)
    location = patch_chunk(client, location, 0, b"0123456789").headers["Location"]
    body = b"abcde"
    params = {"digest": sha256(b"0123456789" + body)} if method == "PUT" else {}
    for content_range in ("10-19", "10-10", "10-13"):
        r = client.request(
            method,
            location,
            params=params,
            content=body,
            headers={**OCTET, "Content-Range": content_range},
        )
        assert_oci_error(r, 400, "BLOB_UPLOAD_INVALID")
    # The refused requests left the session as it was.
    assert_session_response(client.get(location), 204, repo, 9)
    assert_no_blob(client, repo, sha256(b"0123456789" + body))


# -- closing errors ----------------------------------------------------------------------


def test_put_with_wrong_digest_is_digest_invalid(client: httpx.Client, repo: str) -> None:
    data = chunk_of("w", 20 * KiB)
    location = start_upload(client, repo)
    location = patch_chunk(client, location, 0, data).headers["Location"]
    wrong = sha256(b"not the data")
    assert_oci_error(client.put(location, params={"digest": wrong}), 400, "DIGEST_INVALID")
    assert_no_blob(client, repo, wrong)
    assert_no_blob(client, repo, sha256(data))
    # With the final chunk in the PUT as well.
    location = start_upload(client, repo)
    r = client.put(location, params={"digest": wrong}, content=data, headers=OCTET)
    assert_oci_error(r, 400, "DIGEST_INVALID")
    assert_no_blob(client, repo, wrong)
    assert_no_blob(client, repo, sha256(data))


def test_failed_sha512_put_does_not_break_the_session(client: httpx.Client, repo: str) -> None:
    # The shared client keeps one connection, so every request here reaches the same worker.
    data = chunk_of("512", 10 * KiB)
    location = start_upload(client, repo)
    location = patch_chunk(client, location, 0, data).headers["Location"]
    wrong = "sha512:" + "0" * 128
    assert_oci_error(client.put(location, params={"digest": wrong}), 400, "DIGEST_INVALID")
    status = client.get(location)
    if status.status_code == 404:
        return  # a registry may discard a session whose digest did not match (distribution does)
    # The session is still open, so the right digest must close it.
    assert_session_response(status, 204, repo, len(data) - 1)
    r = client.put(location, params={"digest": sha256(data)})
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_put_with_correct_sha512_digest(client: httpx.Client, repo: str) -> None:
    data = chunk_of("sha512", 10 * KiB)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    location = start_upload(client, repo)
    location = patch_chunk(client, location, 0, data[:4000]).headers["Location"]
    r = client.put(
        location,
        params={"digest": digest},
        content=data[4000:],
        headers={**OCTET, "Content-Range": f"4000-{len(data) - 1}"},
    )
    assert_created(r, repo, digest)
    assert_blob(client, repo, digest, data)


def test_put_without_digest_is_400(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    location = patch_chunk(client, location, 0, b"data").headers["Location"]
    assert_oci_error(client.put(location), 400, "DIGEST_INVALID")
    assert_oci_error(client.put(location, params={"digest": ""}), 400, "DIGEST_INVALID")
    for bad in ("sha256:nothex", "sha512:" + "0" * 64, "md5:" + "0" * 32):
        assert_oci_error(client.put(location, params={"digest": bad}), 400, "DIGEST_INVALID")
    assert_no_blob(client, repo, sha256(b"data"))


# -- cancel and unknown sessions -------------------------------------------------------


def test_cancel_upload(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    location = patch_chunk(client, location, 0, b"partial").headers["Location"]
    r = client.delete(location, headers={"Content-Length": "0"})
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_oci_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(patch_chunk(client, location, 7, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    r = client.put(location, params={"digest": sha256(b"partial")})
    assert_oci_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_no_blob(client, repo, sha256(b"partial"))


@pytest.mark.parametrize(
    "upload_id",
    [
        str(uuid.uuid4()),
        "00000000-0000-0000-0000-000000000000",
        str(uuid.uuid4()).upper(),
        "garbage",
        "x" * 300,
        "%2e%2e",
    ],
)
def test_unknown_upload_is_blob_upload_unknown(
    client: httpx.Client, repo: str, upload_id: str
) -> None:
    push_blob(client, repo, b"the repository exists")
    location = f"/v2/{repo}/blobs/uploads/{upload_id}"
    assert_oci_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(patch_chunk(client, location, 0, b"abc"), 404, "BLOB_UPLOAD_UNKNOWN")
    r = client.patch(location, content=b"abc", headers=OCTET)
    assert_oci_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    r = client.put(location, params={"digest": sha256(b"abc")}, content=b"abc")
    assert_oci_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_session_belongs_to_its_repository(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, f"{repo}/a")
    location = patch_chunk(client, location, 0, b"0123").headers["Location"]
    elsewhere = location.replace(f"/v2/{repo}/a/", f"/v2/{repo}/b/")
    assert elsewhere != location
    assert_oci_error(client.get(elsewhere), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(patch_chunk(client, elsewhere, 4, b"4567"), 404, "BLOB_UPLOAD_UNKNOWN")
    r = client.put(elsewhere, params={"digest": sha256(b"0123")})
    assert_oci_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(client.delete(elsewhere), 404, "BLOB_UPLOAD_UNKNOWN")
    # The session in its own repository is untouched.
    assert_created(
        client.put(location, params={"digest": sha256(b"0123")}), f"{repo}/a", sha256(b"0123")
    )
    assert_no_blob(client, f"{repo}/b", sha256(b"0123"))


# -- several workers, interrupted clients ----------------------------------------------


def test_session_continues_across_workers(server: Server, repo: str) -> None:
    workers = worker_pids(server)
    assert len(workers) == 2
    location = start_upload(server.client, repo)
    data = bytearray()
    served: list[int] = []
    switches = 0
    for i in range(200):
        part = chunk_of(f"{repo}-{i}", 32 * KiB + i)
        # A new connection per request: the kernel hands it to either worker.
        with httpx.Client(base_url=server.url, timeout=30) as one:
            r = patch_chunk(one, location, len(data), part)
            client_port = r.extensions["network_stream"].get_extra_info("client_addr")[1]
            worker = serving_worker(server, client_port)
        data += part
        location = assert_session_response(r, 202, repo, len(data) - 1)
        assert worker in workers
        if served and served[-1] != worker:
            switches += 1
        served.append(worker)
        assert_session_response(status_of(location, server), 204, repo, len(data) - 1)
        if i >= 10 and switches >= 4:
            break
    # The session moved between the two workers (each continued the other's work) twice over.
    assert switches >= 4, served
    digest = sha256(bytes(data))
    with httpx.Client(base_url=server.url, timeout=30) as one:
        assert_created(one.put(location, params={"digest": digest}), repo, digest)
    assert_blob(server.client, repo, digest, bytes(data))


def test_resume_after_the_client_disconnects_mid_patch(server: Server, repo: str) -> None:
    # Big enough that the server has consumed (and stored) part of the body when the
    # connection drops: what is still in aiohttp's receive buffer then is discarded,
    # and the reported Range says exactly what was kept.
    data = os.urandom(16 * MiB + 5)
    location = start_upload(server.client, repo)
    sent = 12 * MiB + 12345
    host, port = server.addr.rsplit(":", 1)
    path = httpx.URL(location).raw_path.decode()
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {server.addr}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        # "100 Continue" proves the server is handling the request before the body arrives.
        interim = b""
        while b"\r\n\r\n" not in interim:
            received = sock.recv(4096)
            assert received, interim
            interim += received
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(data[:sent])
    # The client is gone mid-body. Ask (on new connections) where the upload stands,
    # until the answer is stable: the server may still be writing what it received.
    deadline = time.monotonic() + 10
    seen: list[int] = []
    while time.monotonic() < deadline:
        r = status_of(location, server)
        assert r.status_code == 204, r.text
        seen.append(range_end(r))
        if len(seen) >= 5 and len(set(seen[-5:])) == 1 and seen[-1] > 0:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"upload status never settled: {seen}")
    offset = seen[-1] + 1
    assert 0 < offset <= sent
    location = r.headers["Location"]
    r = patch_chunk(server.client, location, offset, data[offset:])
    location = assert_session_response(r, 202, repo, len(data) - 1)
    digest = sha256(data)
    assert_created(server.client.put(location, params={"digest": digest}), repo, digest)
    assert_blob(server.client, repo, digest, data)


# -- cross-repository mount --------------------------------------------------------------


def test_mount_from_another_repository(client: httpx.Client, repo: str) -> None:
    data = chunk_of("mount", 12 * KiB)
    digest = push_blob(client, f"{repo}/src", data)
    assert_no_blob(client, f"{repo}/dst", digest)
    r = client.post(
        f"/v2/{repo}/dst/blobs/uploads/",
        params={"mount": digest, "from": f"{repo}/src"},
        headers={"Content-Length": "0"},
    )
    assert_created(r, f"{repo}/dst", digest)
    assert_blob(client, f"{repo}/dst", digest, data)
    r = client.head(r.headers["Location"])
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(data))
    # Mounting again is harmless.
    r = client.post(
        f"/v2/{repo}/dst/blobs/uploads/", params={"mount": digest, "from": f"{repo}/src"}
    )
    assert_created(r, f"{repo}/dst", digest)


def test_mount_from_a_repository_without_the_blob_starts_an_upload(
    client: httpx.Client, repo: str
) -> None:
    data = chunk_of("elsewhere", 3 * KiB)
    digest = push_blob(client, f"{repo}/has", data)
    push_blob(client, f"{repo}/lacks", b"a repository without that blob")
    for source in (f"{repo}/lacks", f"{repo}/never-existed"):
        r = client.post(f"/v2/{repo}/dst/blobs/uploads/", params={"mount": digest, "from": source})
        location = assert_session_response(r, 202, f"{repo}/dst", 0)
        assert_no_blob(client, f"{repo}/dst", digest)
    # The fallback session is a real one: the client uploads the blob through it.
    r = client.put(location, params={"digest": digest}, content=data, headers=OCTET)
    assert_created(r, f"{repo}/dst", digest)
    assert_blob(client, f"{repo}/dst", digest, data)


def test_mount_without_from_starts_an_upload(client: httpx.Client, repo: str) -> None:
    data = chunk_of("nofrom", 2 * KiB)
    digest = push_blob(client, f"{repo}/src", data)
    r = client.post(f"/v2/{repo}/dst/blobs/uploads/", params={"mount": digest})
    location = assert_session_response(r, 202, f"{repo}/dst", 0)
    assert_no_blob(client, f"{repo}/dst", digest)
    assert_created(
        client.put(location, params={"digest": digest}, content=data), f"{repo}/dst", digest
    )


def test_mount_with_bad_parameters(client: httpx.Client, repo: str) -> None:
    data = chunk_of("badmount", 1000)
    digest = push_blob(client, f"{repo}/src", data)
    r = client.post(
        f"/v2/{repo}/dst/blobs/uploads/", params={"mount": "sha256:xyz", "from": f"{repo}/src"}
    )
    assert_oci_error(r, 400, "DIGEST_INVALID")
    for source in ("../../etc", f"{repo}/src/..", "UPPER/case", f"/{repo}/src", "x" * 300):
        r = client.post(f"/v2/{repo}/dst/blobs/uploads/", params={"mount": digest, "from": source})
        # A bad source name either is refused or falls back to an upload; it never mounts.
        assert r.status_code in (202, 400), (source, r.text)
        if r.status_code == 400:
            assert errors(r) == ["NAME_INVALID"]
        assert_no_blob(client, f"{repo}/dst", digest)


# -- bad input is a 4xx, never a 500 -----------------------------------------------------

MALFORMED_RANGES = [
    "-5-10",
    "5--10",
    "abc",
    "0-",
    "-0",
    "",
    "10-5",
    "0-9,10-19",
    "0x0-0x9",
    "0-9/abc",
    "bytes 0-9/10/11",
    # Long numbers (header lines stay under aiohttp's 8190-byte limit): Python refuses
    # int() of more than 4300 digits, which must not surface as a 500.
    "0" * 5000 + "-9",
    "0-" + "9" * 5000,
    "1" * 4000 + "-" + "1" * 4000,
]
HUGE_RANGES = [
    "0-18446744073709551616",
    "18446744073709551616-18446744073709551625",
    "99999999999999999999999999-99999999999999999999999999",
]


def range_id(value: str) -> str:
    return repr(value) if len(value) <= 40 else f"{len(value)}-chars:{value[:6]}...{value[-6:]}"


@pytest.mark.parametrize("content_range", MALFORMED_RANGES + HUGE_RANGES, ids=range_id)
def test_garbage_content_range_on_patch_is_4xx(
    client: httpx.Client, repo: str, content_range: str
) -> None:
    location = start_upload(client, repo)
    r = client.patch(
        location, content=b"0123456789", headers={**OCTET, "Content-Range": content_range}
    )
    assert r.status_code in (400, 416), r.text
    assert errors(r) == ["BLOB_UPLOAD_INVALID"]
    # The session is intact and still usable.
    location = assert_session_response(patch_chunk(client, location, 0, b"ok"), 202, repo, 1)
    assert_created(client.put(location, params={"digest": sha256(b"ok")}), repo, sha256(b"ok"))


@pytest.mark.parametrize(
    "content_range", [*MALFORMED_RANGES, HUGE_RANGES[1], HUGE_RANGES[2]], ids=range_id
)
def test_garbage_content_range_on_put_is_4xx(
    client: httpx.Client, repo: str, content_range: str
) -> None:
    location = start_upload(client, repo)
    r = client.put(
        location,
        params={"digest": sha256(b"0123456789")},
        content=b"0123456789",
        headers={**OCTET, "Content-Range": content_range},
    )
    assert r.status_code in (400, 416), r.text
    assert errors(r) == ["BLOB_UPLOAD_INVALID"]
    assert_no_blob(client, repo, sha256(b"0123456789"))


def test_wrong_methods_on_upload_endpoints_are_unsupported(client: httpx.Client, repo: str) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        r = client.request(method, f"/v2/{repo}/blobs/uploads/")
        assert_oci_error(r, 405, "UNSUPPORTED")
    location = start_upload(client, repo)
    for method in ("POST",):
        assert_oci_error(client.request(method, location), 405, "UNSUPPORTED")
