"""Build the repository index at start when it is empty but storage is not (a store from
before the index existed, or written by distribution): in the background, in one worker,
while the registry serves. Later changes keep it in step as they happen."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from hatchway.http.state import REGISTRY

log = logging.getLogger("hatchway.index")


async def _build(app: web.Application) -> None:
    indexer = app[REGISTRY].index
    if indexer is None:
        return
    try:
        report = await indexer.first_build()
    except Exception:
        log.exception("could not build the repository index; run `hatchway index rebuild`")
        return
    if report is not None:
        log.info(
            "repository index built from storage: %d repositories, %d tags",
            report.repositories,
            report.tags,
        )


async def first_build(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_build(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
