"""``create_app(config)``: wiring only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from hatchway.config.model import Config
from hatchway.http import api, device, forwarded, health, indexing, maintenance, token
from hatchway.http import metrics as http_metrics
from hatchway.http.api.route import SELF_SERVICE
from hatchway.http.errors import error_middleware
from hatchway.http.oci import mirror as oci_mirror
from hatchway.http.oci import routes
from hatchway.http.state import (
    AUDIT,
    CONFIG,
    CONFIG_PATH,
    FEDERATION,
    GATE,
    JWKS,
    ON_RELOAD,
    REGISTRY,
    TOKEN_REALM,
    TOKEN_SERVICE,
)
from hatchway.http.wiring import build_auth
from hatchway.metadata.engine import database_dsn
from hatchway.observability import metrics
from hatchway.observability.gc import gc_collector
from hatchway.observability.storage import InstrumentedDriver
from hatchway.registry.references import ReferenceCache
from hatchway.registry.service import Registry
from hatchway.storage import drivers

READ_BUFSIZE = 1024 * 1024


def build_registry(config: Config) -> Registry:
    name, options = config.storage.driver()
    if name == "s3":  # replicas sharing the bucket share PostgreSQL locks, if database.dsn is one
        options = {**options, "lockdsn": database_dsn(config)}
    driver = drivers.create(name, options)
    if config.http.debug.prometheus.enabled:  # timed only when someone can read it
        driver = InstrumentedDriver(driver)
    registry = Registry(driver, delete_enabled=config.storage.delete.enabled)
    if name == "s3":
        # A tag's resolution costs two object reads: cache it under the repository's
        # version in the shared database (registry/references.py).
        from hatchway.storage.pglocks import is_postgres
        from hatchway.storage.pgversions import PostgresVersions

        dsn = database_dsn(config)
        if is_postgres(dsn):
            registry.manifests.references = ReferenceCache(PostgresVersions(dsn))
    return registry


def create_app(
    config: Config,
    worker: int = -1,
    registry: Registry | None = None,
    *,
    config_path: Path | None = None,
) -> web.Application:
    """The application for one worker; worker 0 (or the only one, -1) runs maintenance.

    ``config_path`` is the file ``config`` came from: access rules are re-read from it
    when it changes and on SIGHUP.
    """
    middlewares: list[Middleware] = [error_middleware, api.api_errors]
    if config.http.trustedproxies:
        proxies = forwarded.TrustedProxies(config.http.trustedproxies)
        middlewares.insert(0, forwarded.middleware(proxies))
    metrics.configure(
        repository_label=config.http.debug.prometheus.repositorylabel,
        enabled=config.http.debug.prometheus.enabled,
    )
    metrics.add_collector("gc", gc_collector(config))
    app = web.Application(middlewares=middlewares, handler_args={"read_bufsize": READ_BUFSIZE})
    app[CONFIG] = config
    app[CONFIG_PATH] = config_path
    app[REGISTRY] = registry or build_registry(config)
    parts = build_auth(config, config_path)
    app[GATE] = parts.gate
    app[TOKEN_REALM] = parts.realm
    app[AUDIT] = parts.audit
    app[ON_RELOAD] = [parts.reload]
    if parts.token_service is not None and parts.jwks is not None:
        app[TOKEN_SERVICE] = parts.token_service
        app[JWKS] = parts.jwks
        app[FEDERATION] = parts.federation
        token.setup(app)
        device.setup(app)
        app[REGISTRY].attach_index(parts.token_service.store.index)
        if worker <= 0:
            app.cleanup_ctx.append(indexing.first_build)
        api.setup(app)
        if SELF_SERVICE in app:
            from hatchway.http.ui.mount import setup as setup_ui  # token mode only

            setup_ui(app)

    async def close_auth(app: web.Application) -> None:
        parts.close()

    app.on_cleanup.append(close_auth)
    routes.setup(app)
    oci_mirror.setup(app, config, worker)
    health.setup(app, config)
    http_metrics.setup(app, config)
    app.on_response_prepare.append(_response_headers(config.http.headers))
    if worker <= 0 and config.storage.maintenance.uploadpurging.enabled:
        app.cleanup_ctx.append(maintenance.upload_purging)
    return app


def _response_headers(
    extra: dict[str, list[str]],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """Headers on every response, also those a handler streams itself: the API
    version distribution sends, and ``http.headers`` from config.yml."""

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
        for key, values in extra.items():
            for value in values:
                response.headers.add(key, value)

    return add
