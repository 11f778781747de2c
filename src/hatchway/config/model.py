"""The configuration model. Unknown keys are errors; the model is the env mapping too.

Key names follow the CNCF distribution registry's ``config.yml`` where the concepts match,
so an existing file works unchanged for the parts hatchway implements.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from hatchway.config.device import DeviceGrant
from hatchway.config.identity import IdentityConfig
from hatchway.config.observability import Debug, Redis
from hatchway.config.proxy import Proxy
from hatchway.config.s3 import S3, Redirect

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """Go-style durations (``168h``, ``1h30m``, ``10s``) or plain seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 168h or 30m")  # noqa: TRY004 (pydantic)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return float(text)
        parts = _DURATION_RE.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNITS[u] for n, u in parts)
    raise ValueError(f"invalid duration {value!r}: expected e.g. 168h, 30m or 90s")


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _cidrs(value: Any) -> Any:
    """A list of CIDRs; from the environment, one string separated by commas or spaces."""
    if isinstance(value, str):
        return [part for part in re.split(r"[,\s]+", value) if part]
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLS(Section):
    certificate: str
    key: str
    minimumtls: Literal["tls1.2", "tls1.3"] = "tls1.2"


class HTTP(Section):
    addr: str = "127.0.0.1:5000"
    net: Literal["tcp"] = "tcp"
    host: str | None = None
    # Accepted for config.yml compatibility; hatchway keeps upload state in storage.
    secret: str | None = None
    relativeurls: bool = True
    headers: dict[str, list[str]] = Field(default_factory=dict)
    tls: TLS | None = None
    workers: int = Field(default=0, ge=0, le=64, description="0 = one per CPU core")
    # Reverse proxies (CIDRs) whose Forwarded / X-Forwarded-* headers name the client.
    trustedproxies: Annotated[list[str], BeforeValidator(_cidrs)] = Field(default_factory=list)
    debug: Debug = Field(default_factory=Debug)

    @field_validator("trustedproxies")
    @classmethod
    def _trustedproxies(cls, value: list[str]) -> list[str]:
        checked = []
        for cidr in value:
            try:
                checked.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{cidr!r} is not an address or CIDR (e.g. 10.0.0.0/8)") from None
        return checked

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]") and len(host) > 2
        if (
            not sep
            or not port.isdigit()
            or not 0 < int(port) < 65536
            or (":" in host and not bracketed)
            or (host.startswith("[") != host.endswith("]"))
        ):
            raise ValueError(f"expected HOST:PORT (IPv6 as [::1]:PORT), got {value!r}")
        return value

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.addr.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":5000" means all


class Filesystem(Section):
    rootdirectory: str = "./hatchway-data"
    # hatchway: make small writes durable in shared syncfs rounds (storage/groupsync.py).
    # "auto": when rootdirectory is on a filesystem of its own, not the one "/" is on.
    groupcommit: bool | Literal["auto"] = "auto"
    # hatchway: write pushed blob data around the page cache (O_DIRECT) where the
    # filesystem takes it (storage/direct.py); false: through the page cache.
    directio: bool = True


class Delete(Section):
    enabled: bool = False


class UploadPurging(Section):
    enabled: bool = True
    age: Duration = 168 * 3600.0
    interval: Duration = 24 * 3600.0
    dryrun: bool = False


class Maintenance(Section):
    uploadpurging: UploadPurging = Field(default_factory=UploadPurging)


class Storage(Section):
    filesystem: Filesystem | None = None
    inmemory: dict[str, Any] | None = None
    s3: S3 | None = None
    redirect: Redirect | None = None
    # hatchway: with a store that is not a local filesystem (s3), the local directory
    # for what stays on this machine (SQLite default, signing keys, lock files); --data.
    localdirectory: str = "./hatchway-data"
    delete: Delete = Field(default_factory=Delete)
    maintenance: Maintenance = Field(default_factory=Maintenance)
    # distribution's blob-descriptor cache; hatchway needs none, accepted so files load.
    cache: dict[str, Any] | None = None

    def driver(self) -> tuple[str, dict[str, Any]]:
        if sum(d is not None for d in (self.filesystem, self.inmemory, self.s3)) > 1:
            raise ValueError("configure exactly one storage driver")
        if self.inmemory is not None:
            return "inmemory", {}
        if self.s3 is not None:
            return "s3", {**self.s3.driver_options(), "localdirectory": self.localdirectory}
        fs = self.filesystem or Filesystem()
        options: dict[str, Any] = {"rootdirectory": fs.rootdirectory}
        if fs.groupcommit != "auto":
            options["groupcommit"] = fs.groupcommit
        if not fs.directio:
            options["directio"] = False
        return "filesystem", options

    def local_directory(self) -> str:
        """Where what stays on this machine goes: the filesystem driver's root, else
        ``localdirectory``."""
        if self.s3 is not None or self.inmemory is not None:
            return self.localdirectory
        return (self.filesystem or Filesystem()).rootdirectory

    @property
    def redirects(self) -> bool:
        return self.redirect is not None and not self.redirect.disable


class AccessLog(Section):
    disabled: bool = False


class Log(Section):
    level: Literal["error", "warn", "info", "debug"] = "info"
    formatter: Literal["text", "json", "logstash"] = "text"
    accesslog: AccessLog = Field(default_factory=AccessLog)
    fields: dict[str, Any] = Field(default_factory=dict)


def _version(value: Any) -> str:
    # YAML reads distribution's "version: 0.1" as a float.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class TokenAuth(Section):
    """distribution's ``auth.token``. Without ``rootcertbundle``/``jwks`` hatchway runs
    its own token service at ``/auth/token``; with either, it trusts an external one."""

    realm: str | None = None  # default: <scheme>://<host of the request>/auth/token
    service: str = "hatchway"
    issuer: str = "hatchway"
    expiration: int = Field(default=300, ge=60, le=86400)
    signingalgorithm: Literal["ES256", "RS256"] = "ES256"
    rootcertbundle: str | None = None
    jwks: str | None = None  # a JWKS file, or an https:// URL
    jwksinsecure: bool = False  # allow an http:// jwks URL on a loopback address (tests)
    autoredirect: bool = False  # accepted for config.yml compatibility
    device: DeviceGrant = Field(default_factory=DeviceGrant)  # hatchway: login --sso

    @property
    def external(self) -> bool:
        return self.rootcertbundle is not None or self.jwks is not None

    @model_validator(mode="after")
    def _jwks_url(self) -> TokenAuth:
        if self.jwks is not None and "://" in self.jwks:
            problem = jwks_url_problem(self.jwks, insecure=self.jwksinsecure)
            if problem is not None:
                raise ValueError(f"jwks: {problem}")
        return self


def jwks_url_problem(url: str, *, insecure: bool) -> str | None:
    """Why a JWKS URL may not be fetched, or None: keys fetched over plain http could be
    swapped by anyone on the path, so only https, or http to this machine when asked."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme != "http" or not parts.hostname:
        return "expected an https:// URL (or a file path)"
    if not insecure:
        return (
            "http:// is not safe for signing keys: use https:// "
            "(jwksinsecure: true allows http to a loopback address, for tests)"
        )
    if not _loopback(parts.hostname):
        return "jwksinsecure allows http:// only to a loopback address (127.0.0.1, ::1)"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HtpasswdAuth(Section):
    realm: str = "hatchway"
    path: str


class Auth(Section):
    token: TokenAuth | None = None
    htpasswd: HtpasswdAuth | None = None
    # ``none: {}`` states "no authentication" explicitly (and silences nothing).
    none: dict[str, Any] | None = None


class Database(Section):
    dsn: str | None = None  # default: sqlite:///<rootdirectory>/hatchway.db


class Config(Section):
    version: Annotated[str, BeforeValidator(_version)] = "0.1"
    log: Log = Field(default_factory=Log)
    storage: Storage = Field(default_factory=Storage)
    http: HTTP = Field(default_factory=HTTP)
    auth: Auth | None = None
    access: list[dict[str, Any]] | None = None
    database: Database = Field(default_factory=Database)
    health: dict[str, Any] | None = None
    redis: Redis | None = None
    identity: IdentityConfig | None = None
    proxy: Proxy | None = None

    @property
    def auth_mode(self) -> Literal["none", "token", "htpasswd"]:
        if self.auth is None or (self.auth.token is None and self.auth.htpasswd is None):
            return "none"
        return "token" if self.auth.token is not None else "htpasswd"
