"""A cold blob streamed to every waiting client while the one upstream download runs, in
both workers of a real ``hatchway serve --workers 2``, against a real (made slow)
upstream hatchway; and a download whose bytes are not the blob never completes anyone."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.oci import push_blob
from tests.support.server import Server, start_server
from tests.support.slowproxy import SlowProxy
from tests.support.workers import (
    connect,
    connection_to_other_worker,
    spread_connections,
    worker_of,
    worker_with_open_file,
)

SIZE = 32 * 1024 * 1024
CLIENTS = 20


@dataclass
class Pull:
    status: int
    worker: int | None
    first_byte_at: float  # time.monotonic() when the first body byte arrived
    body_sha256: str
    received: int
    complete: bool  # the whole announced body arrived


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "upstream").mkdir()
    server = start_server(tmp_path / "upstream")
    yield server
    server.stop()


def _slow_mirror(tmp_path: Path, upstream: Server, hold_after: int) -> tuple[SlowProxy, Server]:
    host, port = upstream.addr.rsplit(":", 1)
    proxy = SlowProxy((host, int(port)), rate=16 * 1024 * 1024, hold_after=hold_after)
    config = {
        "version": "0.1",
        "proxy": {"upstreams": [{"prefix": "up", "remoteurl": proxy.url, "timeout": "30s"}]},
    }
    (tmp_path / "mirror").mkdir()
    return proxy, start_server(tmp_path / "mirror", config=json.dumps(config), workers=2)


def _pulls(mirror: Server, path: str, gate: Gate, *others: Server) -> list[Pull]:
    """20 concurrent GETs of ``path``, spread evenly over every worker of ``mirror`` and
    ``others``; each pull says which process served it."""
    connections = spread_connections((mirror, *others), CLIENTS)

    def pull(i: int) -> Pull:
        conn, worker = connections[i]
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            hasher = hashlib.sha256()
            received, first_at, complete = 0, 0.0, False
            try:
                first = response.read(1)
                first_at = time.monotonic()
                hasher.update(first)
                received += len(first)
                gate.arrived()
                while chunk := response.read(1 << 20):
                    hasher.update(chunk)
                    received += len(chunk)
                complete = received == int(response.headers.get("Content-Length", -1))
            except (http.client.HTTPException, OSError):
                pass  # cut short
            return Pull(
                response.status,
                worker,
                first_at,
                "sha256:" + hasher.hexdigest(),
                received,
                complete,
            )
        finally:
            conn.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(pull, range(CLIENTS)))


class Gate:
    """Counts the clients that have had their first byte; the last one lets the
    upstream send the rest."""

    def __init__(self, proxy: SlowProxy) -> None:
        self._proxy = proxy
        self._count = 0
        self._lock = threading.Lock()

    def arrived(self) -> None:
        with self._lock:
            self._count += 1
            if self._count == CLIENTS:
                self._proxy.release()


def _upstream_gets(upstream: Server, path: str) -> int:
    needle = f'"GET {path} HTTP/1.1"'
    return sum(needle in line for line in upstream.log().splitlines())


def test_twenty_clients_in_two_workers_stream_one_cold_download(
    tmp_path: Path, upstream: Server
) -> None:
    data = bytes(range(256)) * (SIZE // 256)
    digest = push_blob(upstream.client, "lib/big", data)
    proxy, mirror = _slow_mirror(tmp_path, upstream, hold_after=SIZE // 2)
    try:
        pulls = _pulls(mirror, f"/v2/up/lib/big/blobs/{digest}", Gate(proxy))
        # Every client got the blob, whole and right.
        assert [p.status for p in pulls] == [200] * CLIENTS
        assert all(p.complete and p.body_sha256 == digest for p in pulls)
        # Both workers served some of them.
        assert len({p.worker for p in pulls}) == 2, [p.worker for p in pulls]
        # Each client's first byte arrived before the upstream finished sending the blob
        # (it holds the second half until every client has had its first byte).
        finished = proxy.last_sent_at
        assert all(p.first_byte_at < finished for p in pulls)
        # One upstream download for all of them.
        deadline = time.monotonic() + 5
        while _upstream_gets(upstream, f"/v2/lib/big/blobs/{digest}") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        assert _upstream_gets(upstream, f"/v2/lib/big/blobs/{digest}") == 1
        # Nothing of the download is left in the repository's uploads.
        uploads = mirror.data / "docker/registry/v2/repositories/up/lib/big/_uploads"
        assert not uploads.exists() or not any(uploads.iterdir())
    finally:
        mirror.stop()
        proxy.close()


def test_replicas_on_one_filesystem_and_database_stream_one_download(
    tmp_path: Path, upstream: Server
) -> None:
    """Two ``hatchway serve`` sharing --data (storage and SQLite): the one that does not
    download follows the other's file."""
    data = bytes(range(255, -1, -1)) * (SIZE // 256)
    data = data[:-1] + b"r"
    digest = push_blob(upstream.client, "lib/rep", data)
    host, port = upstream.addr.rsplit(":", 1)
    proxy = SlowProxy((host, int(port)), rate=16 * 1024 * 1024, hold_after=SIZE // 2)
    config = json.dumps(
        {
            "version": "0.1",
            "proxy": {"upstreams": [{"prefix": "up", "remoteurl": proxy.url, "timeout": "30s"}]},
        }
    )
    shared = tmp_path / "shared-data"
    replicas: list[Server] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            replicas.append(start_server(tmp_path / name, config=config, data=shared))
        pulls = _pulls(replicas[0], f"/v2/up/lib/rep/blobs/{digest}", Gate(proxy), replicas[1])
        assert [p.status for p in pulls] == [200] * CLIENTS
        assert all(p.complete and p.body_sha256 == digest for p in pulls)
        assert len({p.worker for p in pulls}) == 2
        assert all(p.first_byte_at < proxy.last_sent_at for p in pulls)
        deadline = time.monotonic() + 5
        while _upstream_gets(upstream, f"/v2/lib/rep/blobs/{digest}") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        assert _upstream_gets(upstream, f"/v2/lib/rep/blobs/{digest}") == 1
    finally:
        for replica in replicas:
            replica.stop()
        proxy.close()


def test_bytes_that_are_not_the_blob_cut_every_follower_short(
    tmp_path: Path, upstream: Server
) -> None:
    data = bytes(reversed(range(256))) * (SIZE // 256)
    digest = push_blob(upstream.client, "lib/bad", data)
    # The upstream's stored copy goes bad: same size, last byte changed.
    hexdigest = digest.split(":", 1)[1]
    stored = upstream.data / f"docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"
    with open(stored, "r+b") as f:
        f.seek(SIZE - 1)
        f.write(b"\x01" if data[-1:] != b"\x01" else b"\x02")
    proxy, mirror = _slow_mirror(tmp_path, upstream, hold_after=SIZE // 2)
    try:
        pulls = _pulls(mirror, f"/v2/up/lib/bad/blobs/{digest}", Gate(proxy))
        # Streamed while it came (every client had bytes), but nobody got a whole body.
        assert all(p.received > 0 for p in pulls)
        assert not any(p.complete for p in pulls)
        assert len({p.worker for p in pulls}) == 2, [p.worker for p in pulls]
        # And nothing was stored under the digest.
        kept = mirror.data / f"docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"
        assert not kept.exists()
        uploads = mirror.data / "docker/registry/v2/repositories/up/lib/bad/_uploads"
        assert not uploads.exists() or not any(uploads.iterdir())
    finally:
        mirror.stop()
        proxy.close()


def test_a_worker_killed_mid_download_cuts_its_followers_and_the_next_pull_works(
    tmp_path: Path, upstream: Server
) -> None:
    data = bytes(range(256)) * (SIZE // 256)
    data = b"k" + data[1:]
    digest = push_blob(upstream.client, "lib/crash", data)
    proxy, mirror = _slow_mirror(tmp_path, upstream, hold_after=SIZE // 2)
    path = f"/v2/up/lib/crash/blobs/{digest}"
    directory = mirror.data / "docker/registry/v2/repositories/up/lib/crash/_uploads"
    try:
        leader_conn = connect(mirror)
        leader = worker_of(mirror, leader_conn)
        assert leader is not None
        follower_conn = connection_to_other_worker(mirror, leader)
        got_first = threading.Event()
        outcome: dict[str, int | bool] = {}

        def read(conn: http.client.HTTPConnection, key: str) -> None:
            conn.request("GET", path)
            response = conn.getresponse()
            received = 0
            try:
                received += len(response.read(1))
                if key == "follower":
                    got_first.set()
                while chunk := response.read(1 << 20):
                    received += len(chunk)
            except (http.client.HTTPException, OSError):
                pass
            finally:
                conn.close()
            outcome[key] = received == SIZE

        threads = [threading.Thread(target=read, args=(leader_conn, "leader"))]
        threads[0].start()
        data_file = directory / f"mirror-{digest.split(':', 1)[1]}" / "data"
        assert worker_with_open_file(mirror, data_file) == leader
        threads.append(threading.Thread(target=read, args=(follower_conn, "follower")))
        threads[1].start()
        assert got_first.wait(60)
        os.kill(leader, signal.SIGKILL)
        for thread in threads:
            thread.join(120)
        # Nobody got a whole body from the dead download.
        assert outcome == {"leader": False, "follower": False}
        # The next pull downloads afresh (the supervisor restarted the dead worker).
        proxy.release()
        with httpx.Client(base_url=mirror.url, timeout=120) as client:
            r = client.get(path)
        assert r.status_code == 200
        assert hashlib.sha256(r.content).hexdigest() == digest.split(":", 1)[1]
    finally:
        mirror.stop()
        proxy.close()
