"""Request metrics and the ``/metrics`` endpoint (Prometheus text format).

Where metrics are served (``http.debug`` as in distribution's config.yml):
- ``http.debug.prometheus.enabled: false`` (the default, as distribution): nowhere.
- enabled with ``http.debug.addr``: on that address, unauthenticated (bind it to
  loopback or a monitoring network, as distribution's debug server).
- enabled without it: on the main port at ``http.debug.prometheus.path``, for an admin
  account's HTTP Basic credentials (a password or, better, an access token) in built-in
  token mode, open only where everything is (no ``auth`` section). Other auth modes have
  no admin accounts, so they must use ``http.debug.addr``.

Requests are counted once the response is written (the access logger's hook, so no
middleware), by route template, never by path.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from typing import Any, Literal

from aiohttp import web

from hatchway.auth.service import TokenRequestError
from hatchway.config.model import Config
from hatchway.errors import ConfigError
from hatchway.http.access import client_info
from hatchway.http.forwarded import ClientAccessLogger
from hatchway.http.oci import routes
from hatchway.http.state import TOKEN_SERVICE
from hatchway.observability import metrics

log = logging.getLogger("hatchway.metrics")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_QUIET = frozenset({"/healthz", "/readyz"})  # probes: counted, never access-logged
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="hatchway metrics"'}


def _template(pattern: re.Pattern[str]) -> str:
    body = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.pattern).replace("/?", "")
    return "/v2/" + body


_V2 = [(pattern, _template(pattern)) for pattern, _ in routes._ROUTES]


def route_of(request: web.Request) -> tuple[str, str | None]:
    """The route template (bounded) and, for /v2/ repository routes, the name."""
    info = request.match_info
    resource = info.route.resource
    if resource is None:
        return "other", None
    canonical = resource.canonical
    if canonical != "/v2/{tail}":
        return canonical, None
    tail = info.get("tail", "")
    if tail == "_catalog":
        return "/v2/_catalog", None
    for pattern, template in _V2:
        match = pattern.fullmatch(tail)
        if match is not None:
            return template, match.group("name")
    return "other", None


def placement(config: Config) -> Literal["off", "debug", "main"]:
    """Where /metrics is served, or ConfigError for a place that would be unsafe."""
    debug = config.http.debug
    if not debug.prometheus.enabled:
        return "off"
    if debug.addr is not None:
        return "debug"
    token = config.auth.token if config.auth is not None else None
    if config.auth_mode == "none" or (token is not None and not token.external):
        return "main"
    raise ConfigError(
        "http.debug.prometheus: on the main port, /metrics needs an admin account of the "
        "built-in token service; with this auth mode set http.debug.addr (a loopback or "
        "monitoring address) to serve metrics there"
    )


def _sent(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """Body bytes sent (the writer's count includes the status line and headers)."""
    if request.method == "HEAD" or response.status in (204, 304):
        return 0
    if isinstance(response, web.FileResponse):
        # sendfile(2) bypasses the writer's count; what was sent is the header's length.
        return response.content_length or 0
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        return len(response.body)
    version = request.version
    head = len(f"HTTP/{version.major}.{version.minor} {response.status} {response.reason}") + 4
    head += sum(len(k) + len(v) + 4 for k, v in response.headers.items())
    return max(0, response.body_length - head)


def record(request: web.Request, response: web.StreamResponse, seconds: float) -> None:
    route, repository = route_of(request)
    method = request.method if request.method in _METHODS else "other"
    status = response.status
    if status >= 400:
        repository = None
    received = request.content.total_bytes if request.body_exists else 0
    metrics.request_done(
        route, method, status, seconds, received, _sent(request, response), repository
    )


def access_logger_class(*, log_lines: bool, metered: bool = True) -> type[ClientAccessLogger]:
    """The access logger that also records request metrics (written, timed responses)."""

    class Metered(ClientAccessLogger):
        @property
        def enabled(self) -> bool:
            return True

        def log(self, request: Any, response: web.StreamResponse, time: float) -> None:
            try:
                if metered and request is not None:
                    record(request, response, time)
            except Exception:
                log.exception("recording request metrics failed")
            quiet = request is not None and request.path in _QUIET
            if log_lines and not quiet and self.logger.isEnabledFor(logging.INFO):
                super().log(request, response, time)

    return Metered


async def scrape(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(metrics.render)
    return web.Response(
        body=body, headers={"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"}
    )


def _basic(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username or "\x00" in decoded:
        return None
    return username, password


def _refusal(status: int, message: str, retry_after: float | None = None) -> web.Response:
    headers = dict(_CHALLENGE) if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    code = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}[status]
    return web.json_response(
        {"errors": [{"code": code, "message": message, "detail": None}]},
        status=status,
        headers=headers,
    )


async def admin_scrape(request: web.Request) -> web.StreamResponse:
    """/metrics on the main port: an admin account's Basic credentials (password or
    access token), through the token service's throttle and audit like any login."""
    credentials = _basic(request)
    if credentials is None:
        return _refusal(401, "authentication required")
    service = request.app[TOKEN_SERVICE]
    try:
        principal, _ = await asyncio.to_thread(service.login, *credentials, client_info(request))
    except TokenRequestError as exc:
        if exc.status == 429:
            return _refusal(429, exc.description, exc.retry_after)
        return _refusal(401, "incorrect username or password")
    if not principal.admin:
        return _refusal(403, "metrics are for administrators")
    return await scrape(request)


def setup(app: web.Application, config: Config) -> None:
    """Serve /metrics on the main port if the configuration puts it there."""
    if config.http.debug.prometheus.enabled:
        # Declared (and prometheus-client imported) now, not in the first request.
        metrics.metrics()
    if placement(config) != "main":
        return
    path = config.http.debug.prometheus.path
    if config.auth_mode == "none":
        app.router.add_get(path, scrape)
    else:
        app.router.add_get(path, admin_scrape)
