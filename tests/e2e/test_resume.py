"""A chunked upload continues where it stood after the server restarts, from saved hash state."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support.oci import sha256
from tests.support.server import start_server
from tests.support.store import start_upload, upload_dir

MiB = 1024 * 1024


def test_upload_resumes_after_kill_from_saved_hash_state(tmp_path: Path) -> None:
    data = os.urandom(24 * MiB + 3)
    server = start_server(tmp_path, workers=1)
    location, upload_id = start_upload(server.client, "t/resume")
    first = data[: 10 * MiB]
    r = server.client.patch(
        location,
        content=first,
        headers={
            "Content-Range": f"0-{len(first) - 1}",
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    states = upload_dir(server.data, "t/resume", upload_id) / "hashstates" / "sha256"
    assert [p.name for p in states.iterdir()] == [str(len(first))]
    server.stop(signal.SIGKILL)

    server = start_server(tmp_path, workers=1, data=server.data)
    try:
        status = server.client.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{len(first) - 1}"
        rest = data[len(first) :]
        r = server.client.patch(
            location,
            content=rest,
            headers={
                "Content-Range": f"{len(first)}-{len(data) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert r.status_code == 202, r.text
        # Only the newest state is kept.
        assert [p.name for p in states.iterdir()] == [str(len(data))]
        digest = sha256(data)
        r = server.client.put(r.headers["Location"], params={"digest": digest})
        assert r.status_code == 201, r.text
        got = server.client.get(f"/v2/t/resume/blobs/{digest}")
        assert got.content == data
        assert not upload_dir(server.data, "t/resume", upload_id).exists()
    finally:
        server.stop()


@pytest.mark.parametrize("state_bytes", [b"garbage", b""], ids=["tampered", "empty"])
def test_a_tampered_hash_state_cannot_store_wrong_content(
    tmp_path: Path, state_bytes: bytes
) -> None:
    # Empty: what a power cut can leave, as hash states are written without syncs.
    server = start_server(tmp_path, workers=1)
    try:
        location, upload_id = start_upload(server.client, "t/tamper")
        r = server.client.patch(location, content=b"a" * 1000)
        assert r.status_code == 202
        state = upload_dir(server.data, "t/tamper", upload_id) / "hashstates" / "sha256" / "1000"
        state.write_bytes(state_bytes)  # not a state this build wrote: re-read instead
        server.stop(signal.SIGKILL)
        server = start_server(tmp_path, workers=1, data=server.data)
        data = b"a" * 1000 + b"b" * 10
        r = server.client.patch(r.headers["Location"], content=b"b" * 10)
        assert r.status_code == 202
        r = server.client.put(r.headers["Location"], params={"digest": sha256(data)})
        assert r.status_code == 201, r.text
    finally:
        server.stop()
