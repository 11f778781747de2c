"""Repository versions in PostgreSQL (what lets replicas on S3 cache tag resolutions),
against the machine's real server: a change is seen by the next read of any process, a
writer that died stops caching until its lease ends, and concurrent reads share a query
without ever answering for a change acknowledged before they asked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from hatchway.oci.digest import Digest
from hatchway.registry.references import ReferenceCache
from hatchway.storage.pgversions import PostgresVersions
from tests.metadata.postgres import fresh_schema
from tests.support.aio import async_test

D1 = Digest.parse("sha256:" + "1" * 64)
D2 = Digest.parse("sha256:" + "2" * 64)


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@async_test
async def test_a_change_moves_the_version_for_every_process(dsn: str) -> None:
    one, other = PostgresVersions(dsn), PostgresVersions(dsn)
    try:
        assert await one.current("lib/app") == 0  # never changed: cacheable as it is
        await other.writing("lib/app")
        assert await one.current("lib/app") is None  # in flight: nothing is cached
        await other.written("lib/app")
        after = await one.current("lib/app")
        assert after is not None
        assert after > 0
        assert await one.current("lib/other") == 0  # versions are per repository
    finally:
        await one.aclose()
        await other.aclose()


@async_test
async def test_a_writer_that_died_stops_caching_until_its_lease_ends(dsn: str) -> None:
    dead, reader = PostgresVersions(dsn, lease=1.0), PostgresVersions(dsn, lease=1.0)
    try:
        before = await reader.current("lib/app")
        await dead.writing("lib/app")  # and never written(): killed mid-change
        await dead.aclose()
        assert await reader.current("lib/app") is None
        deadline = time.monotonic() + 10
        while (now := await reader.current("lib/app")) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert now != before  # what was cached before the change is not used
        # The next change starts the count afresh (the dead writer is not waited for).
        await reader.writing("lib/app")
        await reader.written("lib/app")
        assert await reader.current("lib/app") is not None
    finally:
        await reader.aclose()


@async_test
async def test_reads_share_a_query_but_never_one_sent_before_they_asked(dsn: str) -> None:
    versions, writer = PostgresVersions(dsn), PostgresVersions(dsn)
    sent: list[str] = []
    real = versions._execute

    async def counted(state: object, sql: str, params: object) -> tuple[object, ...]:
        sent.append(sql)
        return await real(state, sql, params)  # type: ignore[arg-type]

    versions._execute = counted  # type: ignore[method-assign]
    try:
        await versions.current("lib/app")  # connected
        sent.clear()
        answers = await asyncio.gather(*(versions.current("lib/app") for _ in range(50)))
        assert len(set(answers)) == 1
        assert len(sent) <= 2  # the first query, and one for all who came while it ran
        # A change acknowledged before a read began is always in that read's answer.
        for _ in range(20):
            old = await versions.current("lib/app")
            await writer.writing("lib/app")
            await writer.written("lib/app")
            assert await versions.current("lib/app") != old
    finally:
        await versions.aclose()
        await writer.aclose()


@async_test
async def test_the_cache_reads_storage_only_when_the_version_moved(dsn: str) -> None:
    cache = ReferenceCache(PostgresVersions(dsn))
    other = ReferenceCache(PostgresVersions(dsn))
    stored = {"tag": D1}
    reads = 0

    async def read() -> Digest:
        nonlocal reads
        reads += 1
        return stored["tag"]

    for _ in range(10):
        assert await cache.resolve("lib/app", "v1", read) == D1
    assert reads == 1
    async with other.changing("lib/app"):  # another replica moves the tag
        stored["tag"] = D2
    assert await cache.resolve("lib/app", "v1", read) == D2
    assert reads == 2
    assert await cache.resolve("lib/app", "v1", read) == D2
    assert reads == 2
