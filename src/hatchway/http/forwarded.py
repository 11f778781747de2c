"""The client as a trusted reverse proxy saw it: its address, and the scheme and host it
asked for (``http.trustedproxies``).

Behind a proxy every request comes from the proxy's address, over the proxy's scheme. A
proxy passes the client's in ``X-Forwarded-For``/``-Proto``/``-Host`` or RFC 7239's
``Forwarded``, but anyone can send those headers, so they count only on a connection
from an address in a trusted CIDR, and never otherwise.

The address list is walked from the right (the entry the nearest proxy added), skipping
addresses that are themselves trusted proxies; the first other address is the client.
Entries further left came from the client and are never believed; an entry that is no
address (``unknown``, garbage) ends the walk at the trusted hop beside it. Proto and host
are taken from the same hop: the value the outermost trusted proxy added (a proxy that
overwrites instead of appending leaves one value, which is then used). A proto other than
http/https, or a host that is no ``host[:port]``, is ignored. ``X-Forwarded-For`` wins
over ``Forwarded`` when both came: a proxy that sets only ``Forwarded`` must drop a
client's ``X-Forwarded-For`` (nginx, HAProxy, Traefik, Caddy and Envoy all set
``X-Forwarded-For``).

The middleware hands the handlers ``request.clone(remote=, scheme=, host=)`` (aiohttp's
way for proxies), so throttling, the audit trail, PAT last-used addresses and the default
token realm all see the client; :class:`ClientAccessLogger` logs its address too.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_log import AccessLogger
from multidict import MultiMapping

# host[:port]: a bracketed IPv6 address, or a name / IPv4 address (nothing to quote).
_HOST_RE = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:\d{1,5})?"
)
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The client's address on the request aiohttp logs (the handlers get a clone).
CLIENT_ADDRESS = web.RequestKey("client_address", str)


def parse_networks(cidrs: Sequence[str]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


def _address(value: str) -> str | None:
    """An address from a list entry: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    text = value.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",")]


@dataclass(frozen=True, slots=True)
class Origin:
    """What a trusted proxy said; None where it said nothing usable."""

    address: str | None
    scheme: str | None
    host: str | None


class TrustedProxies:
    def __init__(self, cidrs: Sequence[str]) -> None:
        self.networks = parse_networks(cidrs)
        self.trusts = functools.lru_cache(maxsize=4096)(self._trusts)

    def _trusts(self, address: str | None) -> bool:
        found = _address(address) if address else None
        if found is None:
            return False
        ip = ipaddress.ip_address(found)
        return any(ip in network for network in self.networks)

    def _walk(self, hops: Sequence[str]) -> tuple[str | None, int]:
        """The client among ``hops`` (None: none usable) and how many trusted hops are
        to its right."""
        client: str | None = None
        for skipped, hop in enumerate(reversed(hops)):
            found = _address(hop)
            if found is None:
                return client, max(skipped - 1, 0)
            client = found
            if not self.trusts(found):
                return found, skipped
        return client, max(len(hops) - 1, 0)

    def origin(
        self,
        peer: str | None,
        headers: MultiMapping[str],
        forwarded: Sequence[Mapping[str, str]] = (),
    ) -> Origin | None:
        """The client's origin, if ``peer`` is a trusted proxy that said anything.

        ``forwarded`` is the parsed RFC 7239 header (aiohttp's ``request.forwarded``).
        """
        if not self.networks or not self.trusts(peer):
            return None
        protos = _split(headers.getall("X-Forwarded-Proto", ()))
        hosts = _split(headers.getall("X-Forwarded-Host", ()))
        hops = _split(headers.getall("X-Forwarded-For", ()))
        if hops:
            address, skipped = self._walk(hops)
            return Origin(address, _scheme(_pick(protos, skipped)), _host(_pick(hosts, skipped)))
        if forwarded:
            address, skipped = self._walk([element.get("for", "") for element in forwarded])
            element = forwarded[max(len(forwarded) - 1 - skipped, 0)]
            return Origin(address, _scheme(element.get("proto")), _host(element.get("host")))
        if protos or hosts:
            return Origin(None, _scheme(_pick(protos, 0)), _host(_pick(hosts, 0)))
        return None


def _pick(values: Sequence[str], skipped: int) -> str | None:
    """The value the outermost trusted proxy added (the only one if it overwrote)."""
    if not values:
        return None
    return values[max(len(values) - 1 - skipped, 0)]


def _scheme(value: str | None) -> str | None:
    lowered = (value or "").strip().lower()
    return lowered if lowered in ("http", "https") else None


def _host(value: str | None) -> str | None:
    text = (value or "").strip()
    return text if _HOST_RE.fullmatch(text) else None


def middleware(proxies: TrustedProxies) -> Middleware:
    """Hand handlers the request as the client made it, when a trusted proxy says so."""

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = proxies.origin(request.remote, request.headers, request.forwarded)
        if origin is None:
            return await handler(request)
        if origin.address is not None:
            request[CLIENT_ADDRESS] = origin.address
        clone = request.clone(
            remote=origin.address or request.remote or "",
            scheme=origin.scheme or request.scheme,
            host=origin.host or request.host,
        )
        return await handler(clone)

    return forwarded


# Pages whose query holds a short-lived code (RFC 8628's verification_uri_complete):
# the access log shows the path alone.
SECRET_QUERIES = frozenset({"/ui/device"})


class _Logged:
    """A finished request as the access log reads it, with the client's address (and
    without a query that holds a code)."""

    def __init__(self, request: Any, remote: str, path_qs: str | None = None) -> None:
        self._request = request
        self.remote = remote
        if path_qs is not None:
            self.path_qs = path_qs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class ClientAccessLogger(AccessLogger):
    """aiohttp's access log line, with the client's address where a trusted proxy gave it."""

    def log(self, request: Any, response: web.StreamResponse, time: float) -> None:
        address = request.get(CLIENT_ADDRESS) if request is not None else None
        hidden = request is not None and request.query_string and request.path in SECRET_QUERIES
        if address is not None or hidden:
            request = _Logged(
                request, address or request.remote, request.path + "?redacted" if hidden else None
            )
        super().log(request, response, time)
