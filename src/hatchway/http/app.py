"""``create_app(config)``: wiring only."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from hatchway.config.model import Config
from hatchway.http import maintenance
from hatchway.http.errors import error_middleware
from hatchway.http.oci import routes
from hatchway.http.state import CONFIG, REGISTRY
from hatchway.registry.service import Registry
from hatchway.storage import drivers

READ_BUFSIZE = 4 * 1024 * 1024


def build_registry(config: Config) -> Registry:
    name, options = config.storage.driver()
    driver = drivers.create(name, options)
    return Registry(driver, delete_enabled=config.storage.delete.enabled)


def create_app(
    config: Config, worker: int = -1, registry: Registry | None = None
) -> web.Application:
    """The application for one worker; worker 0 (or the only one, -1) runs maintenance."""
    middlewares: list[Middleware] = [error_middleware]
    if config.http.headers:
        middlewares.insert(0, _extra_headers(config.http.headers))
    app = web.Application(middlewares=middlewares, handler_args={"read_bufsize": READ_BUFSIZE})
    app[CONFIG] = config
    app[REGISTRY] = registry or build_registry(config)
    routes.setup(app)
    if worker <= 0 and config.storage.maintenance.uploadpurging.enabled:
        app.cleanup_ctx.append(maintenance.upload_purging)
    return app


def _extra_headers(headers: dict[str, list[str]]) -> Middleware:
    """``http.headers`` from config.yml: added to every response."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        for key, values in headers.items():
            for value in values:
                response.headers.add(key, value)
        return response

    return middleware
