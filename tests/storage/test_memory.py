"""The conformance suite bound to the in-memory driver."""

from __future__ import annotations

import pytest

from hatchway.storage.memory import MemoryDriver
from tests.storage.conformance import DriverConformance
from tests.support.aio import async_test


class TestMemoryDriver(DriverConformance):
    @pytest.fixture
    def driver(self) -> MemoryDriver:
        return MemoryDriver()

    @async_test
    async def test_local_path_is_none(self, driver: MemoryDriver) -> None:
        await driver.put_content("/a/file", b"x")
        assert driver.local_path("/a/file") is None
