"""``http.debug`` (metrics and health on a second address) and ``redis``, with
distribution's keys: ``http.debug.addr``, ``http.debug.prometheus.{enabled,path}``;
``redis.{addr,password,db,dialtimeout,readtimeout,writetimeout,pool,tls}``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _duration(value: Any) -> float:
    from hatchway.config.model import parse_duration  # model.py imports this module

    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"expected HOST:PORT (IPv6 as [::1]:PORT), got {value!r}")
    return value


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":5001" means all


class Prometheus(Section):
    enabled: bool = False
    path: str = "/metrics"
    # hatchway: a "repository" label on request metrics. Off: one series per route
    # template; on, one per repository too (only for a bounded set of repositories).
    repositorylabel: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in "?#{} "):
            raise ValueError(f"expected an absolute URL path such as /metrics, got {value!r}")
        return value


class Debug(Section):
    """distribution's debug server: metrics (and here /healthz, /readyz) on a second
    address, unauthenticated; bind it to loopback or a monitoring network."""

    addr: str | None = None
    prometheus: Prometheus = Field(default_factory=Prometheus)

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str | None) -> str | None:
        return None if value is None else _host_port(value)


class RedisPool(Section):
    maxidle: int = Field(default=16, ge=0)
    maxactive: int = Field(default=64, ge=1)
    idletimeout: Duration = 300.0


class RedisTLS(Section):
    enabled: bool = False
    # hatchway: a CA bundle for the server's certificate (default: the system's).
    cafile: str | None = None


class Redis(Section):
    """Only what may be lost lives there (login throttle counters, and the channel that
    tells replicas of revocations): flushing it loses no image, account or token."""

    addr: str
    username: str | None = None
    password: str | None = None
    db: int = Field(default=0, ge=0)
    dialtimeout: Duration = 2.0
    readtimeout: Duration = 2.0
    writetimeout: Duration = 2.0
    pool: RedisPool = Field(default_factory=RedisPool)
    tls: RedisTLS = Field(default_factory=RedisTLS)

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        return _host_port(value)
