"""``/healthz`` (the process answers) and ``/readyz`` (what it needs is reachable), for
load balancers and Kubernetes probes.

Both are unauthenticated, never audited and kept out of the access log. ``/readyz``
checks storage, the database (where this server uses one) and Redis (when configured),
concurrently, each with a short timeout, and remembers the answer for a second so a
probe storm costs one check. It answers 200 ``{"status": "ready", "checks": {...}}`` or
503 with the failed checks named (``"database": "unreachable (OperationalError)"``);
never the error text, which may name hosts or users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy import select

from hatchway.config.model import Config
from hatchway.http.state import REGISTRY
from hatchway.metadata.engine import Database, database_dsn
from hatchway.metadata.tables import accounts
from hatchway.registry.service import Registry
from hatchway.storage.driver import PathNotFoundError

log = logging.getLogger("hatchway.health")

TIMEOUT = 2.0
CACHE = 1.0
Check = Callable[[], Awaitable[None]]


def uses_database(config: Config) -> bool:
    """Does this server read the metadata database while serving?"""
    token = config.auth.token if config.auth is not None else None
    return config.auth_mode == "htpasswd" or (token is not None and not token.external)


class Readiness:
    def __init__(self, checks: dict[str, Check]) -> None:
        self._checks = checks
        self._answer: tuple[float, dict[str, str]] | None = None
        self._lock = asyncio.Lock()

    async def _run(self, name: str, check: Check) -> str:
        try:
            await asyncio.wait_for(check(), TIMEOUT)
        except TimeoutError:
            return "unreachable (timeout)"
        except Exception as exc:
            log.warning("readiness: %s unreachable: %s", name, type(exc).__name__)
            return f"unreachable ({type(exc).__name__})"
        return "ok"

    async def results(self) -> dict[str, str]:
        async with self._lock:
            now = time.monotonic()
            if self._answer is not None and now - self._answer[0] < CACHE:
                return self._answer[1]
            names = list(self._checks)
            found = await asyncio.gather(*(self._run(n, self._checks[n]) for n in names))
            answer = dict(zip(names, found, strict=True))
            self._answer = (time.monotonic(), answer)
            return answer

    def close(self) -> None:
        for check in self._checks.values():
            close = getattr(check, "close", None)
            if close is not None:
                close()


class _DatabaseCheck:
    """One short read on a table every schema has (an empty new file is not ready)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._db: Database | None = None

    def _query(self) -> None:
        if self._db is None:
            self._db = Database(self._dsn)
        with self._db.read() as conn:
            conn.execute(select(accounts.c.id).limit(1)).all()

    async def __call__(self) -> None:
        await asyncio.to_thread(self._query)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


class _RedisCheck:
    def __init__(self, config: Config) -> None:
        from hatchway.shared.redis import client

        assert config.redis is not None
        self._client = client(config.redis)

    async def __call__(self) -> None:
        await asyncio.to_thread(self._client.ping)

    def close(self) -> None:
        self._client.close()


def _storage_check(registry: Registry) -> Check:
    async def check() -> None:
        with contextlib.suppress(PathNotFoundError):  # nothing stored yet: it answered
            await registry.driver.list("/docker")

    return check


def readiness(config: Config, registry: Registry) -> Readiness:
    checks: dict[str, Check] = {"storage": _storage_check(registry)}
    if uses_database(config):
        checks["database"] = _DatabaseCheck(database_dsn(config))
    if config.redis is not None:
        checks["redis"] = _RedisCheck(config)
    return Readiness(checks)


READINESS = web.AppKey("readiness", Readiness)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    results = await request.app[READINESS].results()
    failed = sorted(name for name, state in results.items() if state != "ok")
    body: dict[str, object] = {"status": "ready" if not failed else "unavailable"}
    body["checks"] = results
    if failed:
        body["failed"] = failed
    return web.json_response(
        body, status=503 if failed else 200, headers={"Cache-Control": "no-store"}
    )


def setup(app: web.Application, config: Config) -> None:
    """``/healthz`` and ``/readyz`` on ``app`` (the main or the debug application)."""
    ready = readiness(config, app[REGISTRY])
    app[READINESS] = ready

    async def close(app: web.Application) -> None:
        ready.close()

    app.on_cleanup.append(close)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
