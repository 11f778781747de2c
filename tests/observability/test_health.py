"""/healthz and /readyz against a real ``hatchway serve``: ready, then 503 naming what
failed when the database (PostgreSQL behind a cuttable forwarder) or Redis goes away."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.metadata.postgres import HOST, PORT, fresh_schema
from tests.observability.scrape import burst
from tests.support.authkit import ADMIN, ADMIN_PASSWORD, access_log
from tests.support.redisserver import start_redis
from tests.support.server import free_port, start_server
from tests.support.tcpproxy import TcpProxy


def token_config(**extra: Any) -> str:
    doc: dict[str, Any] = {
        "version": "0.1",
        "auth": {"token": {"service": "hatchway", "issuer": "hatchway"}},
        **extra,
    }
    return json.dumps(doc)


def wait_ready(url: str, status: int) -> httpx.Response:
    """/readyz answers are cached for a second: poll until ``status``."""
    deadline = time.monotonic() + 20
    while True:
        r = httpx.get(url, timeout=30)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_health_and_readiness_on_an_open_server(tmp_path: Path) -> None:
    debug = f"127.0.0.1:{free_port()}"
    config = json.dumps({"version": "0.1", "http": {"debug": {"addr": debug}}})
    server = start_server(tmp_path, workers=2, config=config)
    try:
        for base in (server.url, f"http://{debug}"):
            r = httpx.get(base + "/healthz")
            assert (r.status_code, r.json()) == (200, {"status": "ok"})
            r = httpx.get(base + "/readyz")
            assert r.status_code == 200
            assert r.json() == {"status": "ready", "checks": {"storage": "ok"}}
            assert httpx.head(base + "/healthz").status_code == 200
        # Metrics are off unless enabled, on the debug address too.
        assert httpx.get(f"http://{debug}/metrics").status_code == 404
        httpx.get(server.url + "/v2/")
        time.sleep(0.5)  # the access log line is written after the response
        assert access_log(server, "/v2/")
        assert not access_log(server, "/healthz")
        assert not access_log(server, "/readyz")
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    with fresh_schema() as dsn:
        yield dsn


def test_readyz_fails_when_the_database_is_unreachable(tmp_path: Path, postgres_dsn: str) -> None:
    proxy = TcpProxy((HOST, PORT))
    dsn = postgres_dsn.replace(f"{HOST}:{PORT}", f"127.0.0.1:{proxy.port}")
    server = start_server(
        tmp_path,
        workers=2,
        config=token_config(database={"dsn": dsn}),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        r = httpx.get(server.url + "/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"storage": "ok", "database": "ok"}
        proxy.close()
        r = wait_ready(server.url + "/readyz", 503)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["status"] == "unavailable"
        assert body["failed"] == ["database"]
        assert body["checks"]["storage"] == "ok"
        assert body["checks"]["database"].startswith("unreachable")
        assert "127.0.0.1" not in r.text  # no DSN parts
        assert "postgres" not in r.text
        assert httpx.get(server.url + "/healthz").status_code == 200
        # Logins need the database: 503 in the spec's format, not a 500 or a hang.
        r = httpx.get(
            server.url + "/auth/token?service=hatchway", auth=(ADMIN, ADMIN_PASSWORD), timeout=60
        )
        assert r.status_code == 503, r.text
        assert r.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert r.headers["retry-after"] == "5"
    finally:
        server.stop()
        proxy.close()


def test_readyz_fails_when_redis_is_down_and_throttling_goes_on(tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis")
    server = start_server(
        tmp_path,
        workers=1,
        config=token_config(redis={"addr": redis.addr, "db": 2}),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    token_url = server.url + "/auth/token?service=hatchway"
    try:
        r = httpx.get(server.url + "/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"storage": "ok", "database": "ok", "redis": "ok"}
        redis.stop()
        r = wait_ready(server.url + "/readyz", 503)
        assert r.status_code == 503, r.text
        assert r.json()["failed"] == ["redis"]
        # Redis holds only counters: logins go on, throttled by the database's counters.
        assert httpx.get(token_url, auth=(ADMIN, ADMIN_PASSWORD), timeout=60).status_code == 200
        statuses = burst(token_url, (ADMIN, "wrong"))
        assert 429 in statuses, statuses
    finally:
        server.stop()
        redis.stop()
