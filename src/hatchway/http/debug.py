"""The debug server (``http.debug.addr``, as distribution's): ``/metrics`` when
``http.debug.prometheus.enabled``, and ``/healthz``/``/readyz``. Unauthenticated: bind it
to loopback or a monitoring network. One worker serves it; the metrics it shows are
every worker's (they share the multiprocess directory)."""

from __future__ import annotations

from aiohttp import web

from hatchway.config.model import Config
from hatchway.http import health
from hatchway.http import metrics as http_metrics
from hatchway.http.state import REGISTRY


def create_debug_app(config: Config, main: web.Application) -> web.Application:
    app = web.Application()
    app[REGISTRY] = main[REGISTRY]
    health.setup(app, config)
    prometheus = config.http.debug.prometheus
    if prometheus.enabled:
        app.router.add_get(prometheus.path, http_metrics.scrape)
    return app
