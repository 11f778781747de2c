"""Background upload purging (storage.maintenance.uploadpurging), in one worker only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from hatchway.http.state import CONFIG, REGISTRY
from hatchway.registry.gc import GCReport, purge_uploads

log = logging.getLogger("hatchway.maintenance")


async def _loop(app: web.Application) -> None:
    settings = app[CONFIG].storage.maintenance.uploadpurging
    registry = app[REGISTRY]
    while True:
        try:
            report = GCReport()
            names = await registry.catalog.names(with_uploads=True)
            await purge_uploads(registry, names, settings.age, settings.dryrun, report)
            if report.uploads_deleted:
                verb = "would purge" if settings.dryrun else "purged"
                log.info("%s %d stale upload sessions", verb, len(report.uploads_deleted))
        except Exception:
            log.exception("upload purging failed")
        await asyncio.sleep(settings.interval)


async def upload_purging(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
