"""The driver lock's part of the conformance suite (mixed into :class:`DriverConformance`).

``lock(path, timeout)`` is what keeps two workers out of one upload session and gc out
of a blob a push is using, so every driver must give the same guarantees: exclusive,
bounded waiting, released on every exit, never holding something deleted, and leaving
nothing behind in the store.
"""

from __future__ import annotations

import asyncio

import pytest

from hatchway.storage.driver import (
    InvalidPathError,
    LockTimeoutError,
    PathNotFoundError,
    StorageDriver,
)
from tests.support.aio import async_test


class LockConformance:
    @async_test
    async def test_lock_file_and_directory(self, driver: StorageDriver) -> None:
        await driver.put_content("/k/dir/file", b"x")
        async with driver.lock("/k/dir/file", 1), driver.lock("/k/dir", 1), driver.lock("/k", 1):
            assert await driver.get_content("/k/dir/file") == b"x"
        # Locking creates nothing in the store.
        assert await driver.list("/") == ["/k"]
        assert await driver.list("/k/dir") == ["/k/dir/file"]

    @async_test
    async def test_lock_missing_path(self, driver: StorageDriver) -> None:
        await driver.put_content("/k/file", b"x")
        for missing in ("/nope", "/k/nope", "/k/file/child"):
            with pytest.raises(PathNotFoundError) as info:
                async with driver.lock(missing, 1):
                    pytest.fail("locked a path that does not exist")
            assert info.value.path == missing
        assert await driver.list("/") == ["/k"]
        with pytest.raises(InvalidPathError):
            async with driver.lock("/k/../k", 1):
                pytest.fail("locked an invalid path")

    @async_test
    async def test_lock_excludes_and_times_out(self, driver: StorageDriver) -> None:
        await driver.put_content("/k/file", b"x")
        async with driver.lock("/k", 1):
            for timeout in (0, 0.05):
                with pytest.raises(LockTimeoutError) as info:
                    async with driver.lock("/k", timeout):
                        pytest.fail("two holders at once")
                assert info.value.path == "/k"
            # Another path is another lock.
            async with driver.lock("/k/file", 0):
                pass
        async with driver.lock("/k", 0):
            pass

    @async_test
    async def test_lock_waiter_gets_it_after_release(self, driver: StorageDriver) -> None:
        await driver.put_content("/k/file", b"x")
        events: list[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with driver.lock("/k/file", 1):
                events.append("holder in")
                await release.wait()
                events.append("holder out")

        async def waiter() -> None:
            async with driver.lock("/k/file", 30):
                events.append("waiter in")

        first = asyncio.create_task(holder())
        while not events:
            await asyncio.sleep(0)
        second = asyncio.create_task(waiter())
        for _ in range(20):
            await asyncio.sleep(0)
        assert events == ["holder in"]
        release.set()
        await asyncio.gather(first, second)
        assert events == ["holder in", "holder out", "waiter in"]

    @async_test
    async def test_lock_released_when_the_block_raises(self, driver: StorageDriver) -> None:
        await driver.put_content("/k/file", b"x")
        with pytest.raises(RuntimeError):
            async with driver.lock("/k/file", 1):
                raise RuntimeError("boom")
        async with driver.lock("/k/file", 0):
            pass

    @async_test
    async def test_lock_on_a_path_deleted_meanwhile(self, driver: StorageDriver) -> None:
        await driver.put_content("/k/session/data", b"x")
        outcome: list[str] = []

        async def waiter() -> None:
            try:
                async with driver.lock("/k/session", 30):
                    outcome.append("locked")
            except PathNotFoundError:
                outcome.append("gone")

        async with driver.lock("/k/session", 1):
            task = asyncio.create_task(waiter())
            for _ in range(20):
                await asyncio.sleep(0)
            await driver.delete("/k/session")  # deleting what one holds is allowed
        await task
        assert outcome == ["gone"]
        # Made again, it is a new path to lock.
        await driver.put_content("/k/session/data", b"y")
        async with driver.lock("/k/session", 0):
            pass
        await driver.delete("/k")

    @async_test
    async def test_many_locks_leave_nothing_behind(self, driver: StorageDriver) -> None:
        paths = [f"/many/{i}" for i in range(200)]
        for path in paths:
            await driver.put_content(path, b"x")

        async def use(path: str) -> None:
            async with driver.lock(path, 5):
                await asyncio.sleep(0)

        await asyncio.gather(*(use(p) for p in paths + paths))
        for path in paths:
            with pytest.raises(PathNotFoundError):
                async with driver.lock(path + "-missing", 0):
                    pass
        assert len(await driver.list("/many")) == 200
