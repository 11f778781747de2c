"""The conformance suite bound to the in-memory driver."""

from __future__ import annotations

import pytest

from hatchway.storage.driver import StorageDriver
from hatchway.storage.memory import MemoryDriver
from tests.storage.conformance import DriverConformance
from tests.support.aio import async_test


class TestMemoryDriver(DriverConformance):
    @pytest.fixture
    def driver(self) -> MemoryDriver:
        return MemoryDriver()

    def leftovers(self, driver: StorageDriver) -> list[str]:
        """Lock-table entries: a path nobody holds or waits for must not stay in it."""
        assert isinstance(driver, MemoryDriver)
        return [f"{driver.locks_in_use} lock entries"] if driver.locks_in_use else []

    @async_test
    async def test_local_path_is_none(self, driver: MemoryDriver) -> None:
        await driver.put_content("/a/file", b"x")
        assert driver.local_path("/a/file") is None
