"""``http.debug`` and ``redis:`` keys: distribution's names, unknown keys refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hatchway.config import load
from hatchway.config.model import Config
from hatchway.errors import ConfigError


@pytest.fixture
def loads(tmp_path: Path) -> Callable[[str], Config]:
    def read(text: str) -> Config:
        path = tmp_path / "config.yml"
        path.write_text(text)
        return load.load(path, environ={})

    return read


def test_distribution_keys_load(loads: Callable[[str], Config]) -> None:
    text = """
version: 0.1
http:
  addr: 127.0.0.1:5000
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      path: /metrics
redis:
  addr: localhost:6379
  password: asecret
  db: 0
  dialtimeout: 10ms
  readtimeout: 10ms
  writetimeout: 10ms
  pool:
    maxidle: 16
    maxactive: 64
    idletimeout: 300s
  tls:
    enabled: false
"""
    config = loads(text)
    assert config.http.debug.addr == "localhost:5001"
    assert config.http.debug.prometheus.enabled
    assert config.redis is not None
    assert config.redis.dialtimeout == pytest.approx(0.01)
    assert config.redis.pool.idletimeout == 300


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("redis: {addr: 'h:1', sentinel: x}", "redis.sentinel"),
        ("redis: {addr: 'h:1', pool: {size: 3}}", "redis.pool.size"),
        ("redis: {addr: nope}", "redis.addr"),
        ("redis: {password: x}", "redis.addr"),
        ("http: {debug: {prometheus: {enabled: true, route: /m}}}", "route"),
        ("http: {debug: {prometheus: {path: metrics}}}", "path"),
        ("http: {debug: {addr: ':'}}", "http.debug.addr"),
    ],
)
def test_bad_keys_are_refused(loads: Callable[[str], Config], text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        loads("version: 0.1\n" + text)


def test_environment() -> None:
    config = load.load(
        None,
        environ={
            "HATCHWAY_HTTP_DEBUG_ADDR": "127.0.0.1:5001",
            "HATCHWAY_HTTP_DEBUG_PROMETHEUS_ENABLED": "true",
            "HATCHWAY_REDIS_ADDR": "127.0.0.1:6379",
            "HATCHWAY_REDIS_DB": "3",
        },
    )
    assert config.http.debug.prometheus.enabled
    assert config.redis is not None
    assert config.redis.db == 3
