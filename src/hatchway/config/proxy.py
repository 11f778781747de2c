"""``proxy:``: the pull-through mirror.

distribution's form (``remoteurl``, ``username``, ``password``, ``ttl``) mirrors one
registry for every repository. hatchway adds ``upstreams``: several registries, each under
a repository prefix (``dockerhub/library/alpine`` -> ``library/alpine`` upstream), with the
repositories outside every prefix served and pushed locally as usual::

    proxy:
      upstreams:
        - prefix: dockerhub
          remoteurl: https://registry-1.docker.io
          username: alice
          password: dckr_pat_...
        - prefix: quay
          remoteurl: https://quay.io
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hatchway.config.observability import Duration

_HELPER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PREFIX_RE = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Upstream(_Section):
    # Repository prefix this upstream is mirrored under; "" = every repository.
    prefix: str = ""
    remoteurl: str
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    # hatchway: credentials from docker-credential-<name> (docker's helper protocol).
    credentialhelper: str | None = None
    # distribution: cached content not pulled for this long is removed; 0 keeps it.
    ttl: Duration = 168 * 3600.0
    # hatchway: a tag is checked upstream (HEAD) at most once per this interval.
    freshness: Duration = 60.0
    # hatchway: seconds to wait for the upstream to connect or answer before serving stale.
    timeout: Duration = 10.0
    # hatchway: allow http:// to a host that is not loopback (credentials travel in clear).
    insecure: bool = False

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if value and not _PREFIX_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a repository name prefix (e.g. dockerhub)")
        return value

    @model_validator(mode="after")
    def _url(self) -> Upstream:
        parts = urllib.parse.urlsplit(self.remoteurl)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"remoteurl: expected https://HOST[:PORT], got {self.remoteurl!r}")
        if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
            raise ValueError("remoteurl: give the registry's root URL only (no path, no user)")
        if parts.scheme == "http" and not self.insecure and not _loopback(parts.hostname):
            raise ValueError(
                "remoteurl: http:// is allowed to a loopback address only "
                "(insecure: true allows it elsewhere)"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.credentialhelper is not None:
            if not _HELPER_RE.fullmatch(self.credentialhelper):
                raise ValueError(
                    "credentialhelper: the NAME of docker-credential-NAME (e.g. ecr-login)"
                )
            if self.username is not None:
                raise ValueError("credentialhelper or username/password, not both")
        if self.timeout <= 0 or self.freshness < 0 or self.ttl < 0:
            raise ValueError("timeout must be > 0, freshness and ttl >= 0")
        return self

    @property
    def base_url(self) -> str:
        return self.remoteurl.rstrip("/")

    @functools.cached_property
    def host(self) -> str:
        """``HOST[:PORT]`` of remoteurl, as containerd's ``?ns=`` names it (parsed once:
        every mirrored request asks)."""
        return urllib.parse.urlsplit(self.remoteurl).netloc.lower()

    @functools.cached_property
    def label(self) -> str:
        """The metrics label: the prefix, or the host for the prefix-less upstream."""
        return self.prefix or self.host


class Proxy(_Section):
    remoteurl: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    credentialhelper: str | None = None
    ttl: Duration | None = None
    freshness: Duration | None = None
    timeout: Duration | None = None
    insecure: bool = False
    upstreams: list[Upstream] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> Proxy:
        if self.remoteurl is None:
            if not self.upstreams:
                raise ValueError("proxy: set remoteurl, or a list of upstreams")
            if any(
                v is not None
                for v in (
                    self.username,
                    self.password,
                    self.credentialhelper,
                    self.ttl,
                    self.freshness,
                    self.timeout,
                )
            ):
                raise ValueError(
                    "proxy: username/password/ttl/... belong to remoteurl or to each upstream"
                )
        elif self.upstreams:
            raise ValueError("proxy: use either remoteurl or upstreams, not both")
        prefixes = [u.prefix for u in self.all()]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("proxy: two upstreams have the same prefix")
        if "" in prefixes and len(prefixes) > 1:
            raise ValueError(
                "proxy: an upstream without prefix mirrors every repository: it must be alone"
            )
        for a in prefixes:
            for b in prefixes:
                if a != b and b.startswith(a + "/"):
                    raise ValueError(f"proxy: prefix {b!r} is inside prefix {a!r}")
        return self

    def all(self) -> list[Upstream]:
        """The upstreams; distribution's single form is one upstream without prefix."""
        if self.remoteurl is None:
            return list(self.upstreams)
        single: dict[str, object] = {"remoteurl": self.remoteurl, "insecure": self.insecure}
        for key in ("username", "password", "credentialhelper", "ttl", "freshness", "timeout"):
            value = getattr(self, key)
            if value is not None:
                single[key] = value
        return [Upstream.model_validate(single)]
