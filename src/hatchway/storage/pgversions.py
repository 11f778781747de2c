"""Repository versions in PostgreSQL, so replicas on object storage can cache what a tag
resolves to and still see another replica's push at once.

One row per repository that ever had a tag change: ``generation`` (bumped when a change
begins and again when it has ended), ``writers`` (changes in flight) and ``busy_until``
(the database's clock, in epoch seconds: the lease of the changes in flight). A reader
may cache a resolution under the generation it read *before* reading storage, and use it
while the generation is the same and no change is in flight. A writer that dies in the
middle (``kill -9``) leaves ``writers`` above zero, so nothing is cached for that
repository until its lease has passed, by which time its change has reached storage;
the next change then starts the count afresh.

Reads are batched: the requests of one process that ask for the same repository while
no query for it has been sent yet share the next one. A query sent after a request
arrived answers for that request, so batching never hides a change acknowledged before
it (see :class:`~hatchway.registry.references.ReferenceCache`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from hatchway.storage.pglocks import Connection, LoopConnection, PerLoop, libpq_dsn

# Long enough for any change to reach storage; a change that outlasts it and then dies
# before it is counted as ended is the one case a stale answer could be cached.
LEASE_SECONDS = 60.0

_CREATE = """
CREATE TABLE IF NOT EXISTS reference_versions (
    repository text PRIMARY KEY,
    generation bigint NOT NULL,
    writers integer NOT NULL,
    busy_until double precision NOT NULL
)"""
_READ = """
SELECT generation, writers = 0 OR busy_until < extract(epoch from clock_timestamp())
FROM reference_versions WHERE repository = %s"""
_BEGIN = """
INSERT INTO reference_versions AS v (repository, generation, writers, busy_until)
VALUES (%(name)s, 1, 1, extract(epoch from clock_timestamp()) + %(lease)s)
ON CONFLICT (repository) DO UPDATE SET
    generation = v.generation + 1,
    writers = CASE WHEN v.busy_until < extract(epoch from clock_timestamp())
                   THEN 1 ELSE v.writers + 1 END,
    busy_until = GREATEST(v.busy_until, extract(epoch from clock_timestamp()) + %(lease)s)"""
_END = """
UPDATE reference_versions
SET generation = generation + 1, writers = GREATEST(writers - 1, 0)
WHERE repository = %s"""


async def _create_table(conn: Connection) -> None:
    # Replicas starting together may race to create it: one wins, the rest find it
    # made (PostgreSQL then reports a unique violation on its type).
    with contextlib.suppress(psycopg.errors.UniqueViolation):
        await conn.execute(_CREATE)


@dataclass
class _LoopState:
    link: LoopConnection = field(default_factory=LoopConnection)
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Repository -> the answer of its next query, while that query is not sent yet.
    next: dict[str, asyncio.Future[int | None]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class PostgresVersions:
    """A :class:`~hatchway.registry.references.VersionSource` on one PostgreSQL table."""

    def __init__(self, dsn: str, lease: float = LEASE_SECONDS) -> None:
        self._dsn = libpq_dsn(dsn)
        self._lease = lease
        self._loops = PerLoop(_LoopState)

    async def _execute(
        self, state: _LoopState, sql: str, params: Sequence[object] | Mapping[str, object]
    ) -> tuple[object, ...]:
        link = state.link
        return await link.fetchone(self._dsn, "hatchway-versions", sql, params, _create_table) or ()

    async def current(self, name: str) -> int | None:
        """The repository's generation, or None while a change may be in flight."""
        state = self._loops.get()
        pending = state.next.get(name)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            # Retrieved here too, so an error nobody waits for any more is not reported.
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
            state.next[name] = pending
            task = asyncio.ensure_future(self._fetch(state, name, pending))
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)
        return await asyncio.shield(pending)

    async def _fetch(
        self, state: _LoopState, name: str, answer: asyncio.Future[int | None]
    ) -> None:
        try:
            async with state.sending:
                if state.next.get(name) is answer:
                    del state.next[name]  # sent now: who asks from here on asks again
                row = await self._execute(state, _READ, (name,))
        except Exception as exc:
            if state.next.get(name) is answer:
                del state.next[name]
            if not answer.done():
                answer.set_exception(exc)
            return
        if not answer.done():
            if not row:
                answer.set_result(0)  # never changed since versions were kept
            else:
                generation, cacheable = row
                answer.set_result(int(generation) if cacheable else None)  # type: ignore[call-overload]

    async def writing(self, name: str) -> None:
        """A change of ``name``'s tags is about to reach storage."""
        await self._execute(self._loops.get(), _BEGIN, {"name": name, "lease": self._lease})

    async def written(self, name: str) -> None:
        """The change begun with :meth:`writing` has ended (done, or failed)."""
        await self._execute(self._loops.get(), _END, (name,))

    async def aclose(self) -> None:
        state = self._loops.pop()
        if state is not None:
            await state.link.close()
