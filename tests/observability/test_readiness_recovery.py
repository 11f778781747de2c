"""/readyz follows what it checks both ways: 503 naming the part when Redis, the database
or S3 storage goes away, and 200 again once it is back, with no restart of the server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.metadata.postgres import HOST, PORT, fresh_schema
from tests.observability.test_health import token_config, wait_ready
from tests.support import seaweedfs
from tests.support.authkit import ADMIN, ADMIN_PASSWORD
from tests.support.redisserver import start_redis
from tests.support.server import start_server
from tests.support.tcpproxy import TcpProxy


def test_readyz_follows_redis_down_and_back(tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis")
    server = start_server(
        tmp_path,
        workers=1,
        config=token_config(redis={"addr": redis.addr, "db": 6}),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        assert wait_ready(server.url + "/readyz", 200).json()["checks"]["redis"] == "ok"
        redis.stop()
        r = wait_ready(server.url + "/readyz", 503)
        assert r.status_code == 503, r.text
        assert r.json()["failed"] == ["redis"]
        redis = start_redis(tmp_path / "redis", port=redis.port)
        r = wait_ready(server.url + "/readyz", 200)
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"storage": "ok", "database": "ok", "redis": "ok"}
        # Logins count in Redis again.
        token_url = server.url + "/auth/token?service=hatchway"
        assert httpx.get(token_url, auth=(ADMIN, "wrong"), timeout=60).status_code == 401
        with redis.client(db=6) as conn:
            assert conn.keys("hatchway:attempt:*")
    finally:
        server.stop()
        redis.stop()


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    with fresh_schema() as dsn:
        yield dsn


def test_readyz_follows_the_database_down_and_back(tmp_path: Path, postgres_dsn: str) -> None:
    proxy = TcpProxy((HOST, PORT))
    dsn = postgres_dsn.replace(f"{HOST}:{PORT}", f"127.0.0.1:{proxy.port}")
    server = start_server(
        tmp_path,
        workers=1,
        config=token_config(database={"dsn": dsn}),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        assert wait_ready(server.url + "/readyz", 200).status_code == 200
        proxy.close()
        r = wait_ready(server.url + "/readyz", 503)
        assert r.json()["failed"] == ["database"], r.text
        proxy = TcpProxy((HOST, PORT), port=proxy.port)
        r = wait_ready(server.url + "/readyz", 200)
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == {"storage": "ok", "database": "ok"}
        token_url = server.url + "/auth/token?service=hatchway"
        assert httpx.get(token_url, auth=(ADMIN, ADMIN_PASSWORD), timeout=60).status_code == 200
    finally:
        server.stop()
        proxy.close()


def test_readyz_follows_s3_storage_down_and_back(tmp_path: Path) -> None:
    weed = seaweedfs.server()
    endpoint = urlsplit(weed.endpoint)
    assert endpoint.hostname is not None
    assert endpoint.port is not None
    target = (endpoint.hostname, endpoint.port)
    proxy = TcpProxy(target)
    s3 = weed.options(weed.new_bucket(), regionendpoint=f"http://127.0.0.1:{proxy.port}")
    doc = {"version": "0.1", "storage": {"s3": s3}}
    server = start_server(tmp_path, workers=1, config=json.dumps(doc))
    try:
        r = wait_ready(server.url + "/readyz", 200)
        assert r.json()["checks"] == {"storage": "ok"}, r.text
        proxy.close()
        r = wait_ready(server.url + "/readyz", 503)
        assert r.status_code == 503, r.text
        assert r.json()["failed"] == ["storage"]
        assert "127.0.0.1" not in r.text
        proxy = TcpProxy(target, port=proxy.port)
        r = wait_ready(server.url + "/readyz", 200)
        assert r.status_code == 200, r.text
        assert server.client.get("/v2/").status_code == 200
    finally:
        server.stop()
        proxy.close()
