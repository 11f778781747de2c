"""/metrics against a real two-worker ``hatchway serve``: counts add up across workers,
route templates (never repository names), histograms, bytes, storage latency, gc runs
recorded by another process, and where /metrics may be read."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.observability.scrape import Scrape, burst, scrape, settled
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, add_user, create_pat
from tests.support.images import make_image
from tests.support.oci import push_blob, push_manifest
from tests.support.server import HATCHWAY, Server, free_port, start_server, worker_pids

REPO = "secretrepo/app"
REQUESTS = 30


def config(*, debug: bool = True, auth: dict[str, Any] | None = None, **prometheus: Any) -> str:
    doc: dict[str, Any] = {"version": "0.1", "storage": {"delete": {"enabled": True}}}
    http: dict[str, Any] = {"debug": {"prometheus": {"enabled": True, **prometheus}}}
    if debug:
        http["debug"]["addr"] = f"127.0.0.1:{free_port()}"
    doc["http"] = http
    if auth is not None:
        doc["auth"] = auth
    return json.dumps(doc)


def debug_url(server: Server, cfg: str, path: str = "/metrics") -> str:
    return f"http://{json.loads(cfg)['http']['debug']['addr']}{path}"


@pytest.fixture
def open_server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    cfg = config()
    server = start_server(tmp_path, workers=2, config=cfg)
    try:
        yield server, debug_url(server, cfg)
    finally:
        server.stop()


def push_image(client: httpx.Client) -> list[bytes]:
    image = make_image("metrics", layer_sizes=(4096, 70000))
    blobs = [b.data for b in (image.config, *image.layers)]
    for data in blobs:
        push_blob(client, REPO, data)
    r = push_manifest(client, REPO, "v1", image.manifest.data)
    assert r.status_code == 201, r.text
    return blobs


def metric_files(server: Server) -> set[int]:
    """The pids that wrote counters to this serve's multiprocess directory."""
    directory = server.data / "~tmp" / f"metrics-{server.process.pid}"
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("counter_*.db")}


def test_requests_are_counted_across_workers(open_server: tuple[Server, str]) -> None:
    server, url = open_server
    blobs = push_image(server.client)
    for _ in range(REQUESTS):
        # A connection each: the kernel spreads them over both workers (SO_REUSEPORT).
        r = httpx.get(f"{server.url}/v2/{REPO}/tags/list", timeout=30)
        assert r.status_code == 200
    big = blobs[-1]
    digest = "sha256:" + hashlib.sha256(big).hexdigest()
    for _ in range(3):
        r = httpx.get(f"{server.url}/v2/{REPO}/blobs/{digest}", timeout=30)
        assert r.content == big
    tags = "/v2/{name}/tags/list"

    def check(found: Scrape) -> None:
        assert found.value("hatchway_http_requests_total", route=tags, method="GET") == REQUESTS
        assert set(worker_pids(server)) <= metric_files(server)  # both workers contributed

        # Latency histograms: buckets, +Inf equal to the count.
        assert found.types["hatchway_http_request_duration_seconds"] == "histogram"
        buckets = found.find("hatchway_http_request_duration_seconds_bucket", route=tags)
        assert len(buckets) > 5
        inf = found.value("hatchway_http_request_duration_seconds_bucket", route=tags, le="+Inf")
        assert inf == found.value("hatchway_http_request_duration_seconds_count", route=tags)

        # Route templates only: no repository, digest or reference in any label.
        assert "secretrepo" not in found.text
        assert digest not in found.text
        assert "repository" not in {k for s in found.samples for k in s.labels}
        routes = found.label_values("route")
        assert {"/v2/{name}/blobs/{digest}", "/v2/{name}/manifests/{reference}"} <= routes
        assert "/v2/{name}/blobs/uploads" in routes

        # Bytes in (every pushed blob) and out (blob GETs, sent with sendfile).
        blob_route = "/v2/{name}/blobs/{digest}"
        assert found.value("hatchway_http_response_bytes_total", route=blob_route) == 3 * len(big)
        received = found.value("hatchway_http_request_bytes_total")
        assert received >= sum(len(b) for b in blobs)
        assert found.value("hatchway_http_uploads_in_flight") == 0
        assert found.types["hatchway_http_uploads_in_flight"] == "gauge"

        # Storage operations, by driver and operation, with latency buckets.
        ops = {
            s.labels["operation"]
            for s in found.find("hatchway_storage_operation_duration_seconds_count")
            if s.labels["driver"] == "filesystem" and s.value > 0
        }
        assert {"writer", "writer_commit", "move", "put_content", "get_content", "stat"} <= ops
        assert found.find("hatchway_storage_operation_duration_seconds_bucket", le="0.001")

    settled(url, check)


def test_a_dead_worker_s_counts_stay(open_server: tuple[Server, str]) -> None:
    server, url = open_server
    for _ in range(10):
        assert httpx.get(f"{server.url}/v2/_catalog", timeout=30).status_code == 200

    def ten(found: Scrape) -> None:
        assert found.value("hatchway_http_requests_total", route="/v2/_catalog") == 10

    settled(url, ten)  # every worker wrote its counts before one is killed
    victims = worker_pids(server)
    os.kill(victims[-1], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while len(set(worker_pids(server)) - set(victims)) < 1:
        assert time.monotonic() < deadline, "the worker was not restarted"
        time.sleep(0.1)
    # Any worker answers (the debug address is worker 0's; the killed one may be it).
    deadline = time.monotonic() + 20
    while True:
        try:
            settled(url, ten)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_gc_runs_show_in_metrics(open_server: tuple[Server, str]) -> None:
    """gc is another process: it records its run, and the servers' /metrics show it."""
    server, url = open_server
    orphan = os.urandom(50_000)
    push_blob(server.client, REPO, orphan)  # no manifest references it
    empty = scrape(url)
    assert empty.value("hatchway_gc_runs_total") == 0
    result = subprocess.run(
        [HATCHWAY, "gc", "--data", str(server.data), "--grace", "0s"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = scrape(url)
    assert found.value("hatchway_gc_runs_total", outcome="success") == 1
    assert found.value("hatchway_gc_bytes_freed_total") == len(orphan)
    assert found.value("hatchway_gc_blobs_deleted_total") == 1
    assert found.find("hatchway_gc_last_run_duration_seconds")
    assert found.value("hatchway_gc_duration_seconds_total") > 0
    assert found.value("hatchway_gc_last_run_timestamp_seconds") > time.time() - 600


def test_repository_label_only_when_asked(tmp_path: Path) -> None:
    cfg = config(repositorylabel=True)
    server = start_server(tmp_path, workers=1, config=cfg)
    try:
        push_image(server.client)

        def labelled(found: Scrape) -> None:
            assert found.value("hatchway_http_requests_total", repository=REPO) > 0

        settled(debug_url(server, cfg), labelled)
        # Refusals (404 for a name that exists nowhere) never add a series.
        assert httpx.get(f"{server.url}/v2/nobody/x/tags/list").status_code == 404
        assert "nobody/x" not in scrape(debug_url(server, cfg)).text
    finally:
        server.stop()


# -- authentication outcomes -------------------------------------------------------------

TOKEN = {"token": {"service": "hatchway", "issuer": "hatchway"}}


def _grant(server: Server, user: str, secret: str) -> int:
    r = httpx.get(f"{server.url}/auth/token?service=hatchway", auth=(user, secret), timeout=60)
    return r.status_code


def test_auth_outcomes_by_kind(tmp_path: Path) -> None:
    cfg = config(auth=TOKEN)
    server = start_server(
        tmp_path, workers=2, config=cfg, env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    try:
        add_user(server, "alice", "alice-Pw-0123")
        pat = create_pat(server, "alice", "ci", ["repository:alice/*:pull"])
        assert _grant(server, ADMIN, ADMIN_PASSWORD) == 200
        assert _grant(server, "alice", pat) == 200
        assert _grant(server, "alice", "hw_" + "B" * 43) == 401  # shaped like a token
        form = {
            "grant_type": "password",
            "username": ADMIN,
            "password": ADMIN_PASSWORD,
            "client_id": "e2e",
            "access_type": "offline",
            "service": "hatchway",
        }
        refresh = httpx.post(server.url + "/auth/token", data=form, timeout=60).json()
        again = {
            "grant_type": "refresh_token",
            "refresh_token": refresh["refresh_token"],
            "client_id": "e2e",
            "service": "hatchway",
        }
        assert httpx.post(server.url + "/auth/token", data=again, timeout=60).status_code == 200
        statuses = burst(f"{server.url}/auth/token?service=hatchway", ("alice", "wrong"))
        assert 429 in statuses, statuses

        def check(found: Scrape) -> None:
            def auth(kind: str, outcome: str) -> float:
                return found.value("hatchway_auth_attempts_total", kind=kind, outcome=outcome)

            assert auth("password", "success") == 2  # the GET and the form login
            assert auth("pat", "success") == 1
            assert auth("pat", "failure") == 1
            assert auth("refresh", "success") == 1
            assert auth("password", "failure") == statuses.count(401)
            assert auth("password", "throttled") == statuses.count(429)
            assert found.value("hatchway_token_grants_total", grant="basic") == 2
            assert found.value("hatchway_token_grants_total", grant="refresh_token") == 1
            assert found.value("hatchway_token_grants_total", grant="password") == 1
            assert "alice" not in found.text

        settled(debug_url(server, cfg), check)
    finally:
        server.stop()


# -- where /metrics is served ------------------------------------------------------------


def test_main_port_metrics_need_an_admin(tmp_path: Path) -> None:
    cfg = config(debug=False, auth=TOKEN)
    server = start_server(
        tmp_path, workers=1, config=cfg, env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    try:
        add_user(server, "alice", "alice-Pw-0123")
        url = server.url + "/metrics"
        r = httpx.get(url)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic ")
        assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        assert httpx.get(url, auth=("alice", "alice-Pw-0123")).status_code == 403
        assert httpx.get(url, auth=(ADMIN, "wrong")).status_code == 401

        def one_failure(found: Scrape) -> None:
            failed = found.value("hatchway_auth_attempts_total", kind="password", outcome="failure")
            assert failed == 1

        settled(url, one_failure, auth=(ADMIN, ADMIN_PASSWORD))
        pat = create_pat(server, ADMIN, "prometheus", ["repository:none:pull"])
        scrape(url, auth=(ADMIN, pat))
    finally:
        server.stop()


def test_main_port_metrics_are_open_without_auth(tmp_path: Path) -> None:
    server = start_server(tmp_path, workers=1, config=config(debug=False))
    try:
        scrape(server.url + "/metrics")
    finally:
        server.stop()


def test_metrics_off_by_default(tmp_path: Path) -> None:
    server = start_server(tmp_path, workers=1)
    try:
        assert httpx.get(server.url + "/metrics").status_code == 404
    finally:
        server.stop()


def test_other_auth_modes_must_use_the_debug_address(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("")
    path = tmp_path / "config.yml"
    path.write_text(config(debug=False, auth={"htpasswd": {"path": str(htpasswd)}}))
    result = subprocess.run(
        [HATCHWAY, "serve", "--config", str(path), "--data", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "http.debug.addr" in result.stderr
    assert "Traceback" not in result.stderr
