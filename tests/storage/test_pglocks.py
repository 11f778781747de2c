"""PostgreSQL advisory locks (the lock service of replicas sharing one bucket): the lock
part of the conformance suite through the S3 driver against SeaweedFS, exclusion between
processes, and release when the holding process is killed."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hatchway.storage.driver import LockTimeoutError
from hatchway.storage.drivers import create
from hatchway.storage.pglocks import PostgresLocks, is_postgres, libpq_dsn
from hatchway.storage.s3 import S3Driver
from tests.metadata.postgres import fresh_schema
from tests.storage.lock_conformance import LockConformance
from tests.support import seaweedfs
from tests.support.aio import async_test


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def held_advisory_locks(dsn: str) -> int:
    with psycopg.connect(libpq_dsn(dsn), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND a.application_name = 'hatchway-locks'"
            " AND l.granted AND a.pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


class TestS3DriverWithPostgresLocks(LockConformance):
    @pytest.fixture
    def driver(self, tmp_path: Path, dsn: str) -> S3Driver:
        weed = seaweedfs.server()
        options = weed.options(weed.new_bucket())
        # As build_registry passes it: database.dsn in SQLAlchemy's spelling.
        lockdsn = dsn.replace("postgresql://", "postgresql+psycopg://")
        driver = create("s3", {**options, "localdirectory": str(tmp_path), "lockdsn": lockdsn})
        assert isinstance(driver, S3Driver)
        assert isinstance(driver._locks, PostgresLocks)
        return driver


def test_only_postgres_dsns_choose_postgres_locks(tmp_path: Path) -> None:
    assert is_postgres("postgres://u@h/db")
    assert is_postgres("postgresql+psycopg://u@h/db")
    assert not is_postgres(f"sqlite:///{tmp_path}/hatchway.db")
    assert not is_postgres(None)
    weed = seaweedfs.server()
    options = {**weed.options("b"), "localdirectory": str(tmp_path)}
    sqlite = create("s3", {**options, "lockdsn": f"sqlite:///{tmp_path}/h.db"})
    assert type(sqlite._locks).__name__ == "FileLocks"  # type: ignore[attr-defined]


_HOLDER = """
import asyncio, sys
from hatchway.storage.pglocks import PostgresLocks
async def main():
    async with PostgresLocks(sys.argv[1], sys.argv[2]).hold("/k", 5):
        print("held", flush=True)
        sys.stdin.readline()
asyncio.run(main())
"""


def start_holder(dsn: str, namespace: str) -> subprocess.Popen[bytes]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, dsn, namespace],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"held\n"
    return holder


@async_test
async def test_locks_exclude_other_processes_and_die_with_them(dsn: str) -> None:
    namespace = f"ns-{secrets.token_hex(4)}"
    locks = PostgresLocks(dsn, namespace)
    holder = start_holder(dsn, namespace)
    try:
        with pytest.raises(LockTimeoutError):
            async with locks.hold("/k", 0.2):
                pytest.fail("held by two processes")
        async with PostgresLocks(dsn, namespace + "-other").hold("/k", 0):
            pass  # another namespace is another lock
        # A waiter gets it once the holder is killed outright: its connection closes.
        waiter = asyncio.create_task(_hold_briefly(locks, 30))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        os.kill(holder.pid, signal.SIGKILL)
        await waiter
    finally:
        holder.kill()
        await asyncio.to_thread(holder.wait)
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()
    async with locks.hold("/k", 0):
        pass
    assert await asyncio.to_thread(held_advisory_locks, dsn) == 0
    await locks.aclose()


async def _hold_briefly(locks: PostgresLocks, wait: float) -> None:
    async with locks.hold("/k", wait):
        pass


@async_test
async def test_a_cancelled_waiter_leaves_nothing_held(dsn: str) -> None:
    locks = PostgresLocks(dsn, f"ns-{secrets.token_hex(4)}")
    async with locks.hold("/k", 1):
        waiters = [asyncio.create_task(_hold_briefly(locks, 30)) for _ in range(5)]
        await asyncio.sleep(0.05)
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    other = PostgresLocks(dsn, locks._namespace)  # another process's view: a new session
    other_loop_result: list[str] = []

    def in_another_loop() -> None:
        async def go() -> None:
            async with other.hold("/k", 1):
                other_loop_result.append("held")

        asyncio.run(go())

    await asyncio.to_thread(in_another_loop)
    assert other_loop_result == ["held"]
    await locks.aclose()
