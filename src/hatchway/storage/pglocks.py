"""Locks shared by replicas on several machines: PostgreSQL session advisory locks.

Replicas that share one bucket must also share the locks that keep two of them out of
one upload session and ``hatchway gc`` out of a blob a push is linking; flock(2) under a
local directory (:class:`~hatchway.storage.locks.FileLocks`) excludes only one machine.
They already share a PostgreSQL database (``database.dsn``), so a lock is
``pg_try_advisory_lock`` on a signed 64-bit hash of (namespace, path), polled with the
same backoff and deadline as the flock one.

Each process (each event loop) keeps one dedicated autocommit connection for its locks.
Session advisory locks are re-entrant within a session, so holders in this process are
first excluded from each other by an in-process lock per key, and only then ask the
server. A process that dies (``kill -9``) closes its connection, and the server drops
every lock it held at once: nothing stays held by the dead. If the connection itself is
lost while a lock is held, the server has already released it; the holder is not told
(as with a lease that lapsed) and the next lock opens a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import psycopg

from hatchway.storage.driver import LockTimeoutError

log = logging.getLogger("hatchway.storage.locks")

_POLL_FIRST = 0.002
_POLL_MAX = 0.05


def libpq_dsn(dsn: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg://`` (or ``postgres://``) as libpq takes it."""
    scheme, sep, rest = dsn.partition("://")
    if sep and scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        return f"postgresql://{rest}"
    return dsn


def is_postgres(dsn: str | None) -> bool:
    return bool(dsn) and libpq_dsn(dsn or "").startswith("postgresql://")


async def open_for_loop(
    dsn: str, application_name: str
) -> tuple[psycopg.AsyncConnection[tuple[object, ...]], AsyncGenerator[None, None]]:
    """An autocommit connection owned by the running loop: the generator returned with
    it closes it, and the loop's ``shutdown_asyncgens`` runs that at the loop's end."""
    conn = await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, application_name=application_name
    )

    async def keep() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await conn.close()

    keeper = keep()
    await anext(keeper)
    return conn, keeper


def lock_key(namespace: str, path: str) -> int:
    """The advisory lock key: the first 8 bytes of sha256(namespace NUL path), signed."""
    digest = hashlib.sha256(f"{namespace}\0{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class _Local:
    """Holders in this process of one key: they take turns before asking the server
    (a session's advisory locks are re-entrant, so the server would let all in)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


Connection = psycopg.AsyncConnection[tuple[object, ...]]
S = TypeVar("S")


@dataclass
class LoopConnection:
    """A loop's own autocommit connection: opened on first use, again once lost, and
    closed with the loop (see :func:`open_for_loop`)."""

    conn: Connection | None = None
    keeper: AsyncGenerator[None, None] | None = None
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(
        self,
        dsn: str,
        application_name: str,
        prepare: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> Connection:
        """The connection; ``prepare`` runs on each new one before it is handed out."""
        async with self.opening:
            if self.conn is not None and not self.conn.closed:
                return self.conn
            conn, keeper = await open_for_loop(dsn, application_name)
            if prepare is not None:
                await prepare(conn)
            self.conn, self.keeper = conn, keeper
            return conn

    async def fetchone(
        self,
        dsn: str,
        application_name: str,
        sql: str,
        params: Sequence[object] | Mapping[str, object],
        prepare: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> tuple[object, ...] | None:
        """Run ``sql``; its first row (None without one). A lost connection is closed,
        so the next call connects afresh; its error is raised."""
        conn = await self.get(dsn, application_name, prepare)
        try:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone() if cursor.description else None
        except psycopg.OperationalError:
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    async def close(self) -> None:
        if self.keeper is not None:
            await self.keeper.aclose()


class PerLoop(Generic[S]):
    """One ``S`` for each running event loop (a worker process's, a test's)."""

    def __init__(self, make: Callable[[], S]) -> None:
        self._make = make
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, S] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> S:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = self._make()
        return state

    def pop(self) -> S | None:
        return self._loops.pop(asyncio.get_running_loop(), None)


@dataclass
class _LoopState:
    link: LoopConnection = field(default_factory=LoopConnection)
    local: dict[int, _Local] = field(default_factory=dict)
    unlocking: set[asyncio.Future[None]] = field(default_factory=set)


class PostgresLocks:
    """A :class:`~hatchway.storage.locks.LockService` on PostgreSQL advisory locks."""

    def __init__(self, dsn: str, namespace: str) -> None:
        self._dsn = libpq_dsn(dsn)
        self._namespace = namespace
        self._loops = PerLoop(_LoopState)

    async def _query(self, state: _LoopState, sql: str, key: int) -> bool:
        # A lost connection takes every lock it held with it; the next query reconnects.
        row = await state.link.fetchone(self._dsn, "hatchway-locks", sql, (key,))
        return bool(row and row[0])

    @contextlib.asynccontextmanager
    async def hold(self, path: str, wait: float) -> AsyncIterator[None]:
        state = self._loops.get()
        key = lock_key(self._namespace, path)
        deadline = time.monotonic() + wait
        entry = state.local.setdefault(key, _Local())
        entry.users += 1
        try:
            await self._acquire_local(entry.lock, path, deadline)
            try:
                delay = _POLL_FIRST
                while not await self._try(state, key):
                    if time.monotonic() >= deadline:
                        raise LockTimeoutError(path)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _POLL_MAX)
                try:
                    yield
                finally:
                    await self._unlock(state, key)
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if not entry.users:
                del state.local[key]

    @staticmethod
    async def _acquire_local(lock: asyncio.Lock, path: str, deadline: float) -> None:
        if not lock.locked():
            await lock.acquire()
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockTimeoutError(path)
        try:
            await asyncio.wait_for(lock.acquire(), remaining)
        except TimeoutError:
            raise LockTimeoutError(path) from None

    async def _try(self, state: _LoopState, key: int) -> bool:
        """One ``pg_try_advisory_lock``. Cancelled while it is in flight, the answer is
        still awaited (shielded) and a lock it took is given back, never left held."""
        attempt = asyncio.ensure_future(self._query(state, "SELECT pg_try_advisory_lock(%s)", key))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:

            def give_back(done: asyncio.Future[bool]) -> None:
                if not done.cancelled() and done.exception() is None and done.result():
                    task = asyncio.ensure_future(self._unlock(state, key))
                    state.unlocking.add(task)
                    task.add_done_callback(state.unlocking.discard)

            attempt.add_done_callback(give_back)
            raise

    async def _unlock(self, state: _LoopState, key: int) -> None:
        try:
            await asyncio.shield(self._query(state, "SELECT pg_advisory_unlock(%s)", key))
        except psycopg.OperationalError as exc:
            log.warning("lost the lock connection (its locks are released): %s", exc)

    async def aclose(self) -> None:
        """Close this loop's connection now (otherwise it closes with its loop)."""
        state = self._loops.pop()
        if state is not None:
            await state.link.close()
