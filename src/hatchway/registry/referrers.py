"""The referrers API: manifests whose ``subject`` is a given digest."""

from __future__ import annotations

import json
from typing import Any

from hatchway.oci.digest import Digest
from hatchway.registry import layout
from hatchway.storage.driver import PathNotFoundError, StorageDriver


class Referrers:
    def __init__(self, driver: StorageDriver) -> None:
        self._driver = driver

    async def list(
        self, name: str, subject: Digest, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        try:
            entries = await self._driver.list(layout.referrers(name, subject))
        except PathNotFoundError:
            return []
        found: list[dict[str, Any]] = []
        for entry in sorted(entries):
            try:
                descriptor = json.loads(await self._driver.get_content(entry))
            except (PathNotFoundError, ValueError):
                continue
            if artifact_type is None or descriptor.get("artifactType") == artifact_type:
                found.append(descriptor)
        return found
