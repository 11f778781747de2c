"""Group commit: one syncfs(2) makes the small writes of many concurrent requests durable.

A manifest push makes three small files durable (the manifest, its revision link, the
tag), each written to a temp file, synced, renamed and its directory synced. Done one
fsync at a time, each costs a journal commit and a disk cache flush (3-4 ms here), and 32
pushes at once queue up for hundreds of them, each also a hop to a worker thread.

Here a writer hands its operation to the group and waits. One worker thread runs
*rounds*: it does the first step of every operation handed in since the last round
(write the temp file), one syncfs of the storage filesystem, then the second step (the
rename that makes the content visible); the next round's syncfs makes those renames
durable, and only then do their writers return. So, as with one fsync per file, content
is durable before it is visible and acknowledged only once durable, whatever else runs.

syncfs also flushes whatever else is dirty on that filesystem. On a registry's own
volume that is the blob uploads in flight, which already stream to disk as they arrive
(the filesystem driver starts writeback every 16 MiB); on a filesystem shared with other
busy programs a round also waits for their writes, so rounds there have a longer tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hatchway.storage.driver import StorageError


def _load_syncfs() -> Callable[[int], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if func(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


syncfs = _load_syncfs()

# Rounds that take longer than this on average mean other programs' writes are in the
# way (syncfs waits for them): a driver that adapts then fsyncs file by file for
# COOL_DOWN seconds before trying rounds again. Quiet, a round took 0.5-6 ms on this
# project's machine; with a large write running beside it, 10-30 ms (bench/README.md).
SLOW_ROUND = 0.020
COOL_DOWN = 10.0


@dataclass(eq=False)
class _Operation:
    """Two steps with a sync after each; ``prepare``'s result goes to ``publish``."""

    prepare: Callable[[], Any]
    publish: Callable[[Any], None] | None
    discard: Callable[[Any], None] | None  # undo ``prepare`` when ``publish`` won't run
    done: asyncio.Future[None]
    state: Any = None
    error: BaseException | None = field(default=None)


class GroupSync:
    """Durability rounds for one filesystem, for the tasks of one event loop at a time."""

    def __init__(self, directory: str, concurrent_rounds: int = 1) -> None:
        # Kept open: since Linux 5.8 syncfs reports the writeback errors that happened
        # since this descriptor was opened and were not reported through it yet.
        self._fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # More than one round at a time would let a writer arriving mid-round start its
        # own at once, for more syncs (and CPU) per request; on this project's shared
        # disk neither setting won clearly, so one round at a time, the classic way.
        self._max_rounds = concurrent_rounds
        self._running = 0
        self._fresh: list[_Operation] = []  # handed in, first step not done yet
        self._published: list[_Operation] = []  # second step done, awaiting a round
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rounds = 0  # syncfs calls made, for tests and curiosity
        self._average = 0.0  # seconds per syncfs, weighted towards the recent rounds
        self._slow_until = 0.0  # time.monotonic() until which rounds are best avoided

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.close(self._fd)

    async def run(
        self,
        prepare: Callable[[], Any],
        publish: Callable[[Any], None] | None = None,
        discard: Callable[[Any], None] | None = None,
    ) -> None:
        """Run ``prepare`` then, once that is durable, ``publish``; return once that is
        durable too. Both run in the group's thread; their exceptions come back here."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests, CLI): nothing carries over
            self._loop, self._running, self._fresh, self._published = loop, 0, [], []
            self._tasks = set()
        op = _Operation(prepare, publish, discard, loop.create_future())
        self._fresh.append(op)
        self._start_rounds(loop)
        # A cancelled caller cancels only its wait: the round still does its steps.
        await op.done

    def _start_rounds(self, loop: asyncio.AbstractEventLoop) -> None:
        while (self._fresh or self._published) and self._running < self._max_rounds:
            # What is handed in now was written before this round's syncfs starts;
            # whatever comes later waits for a later round.
            fresh, self._fresh = self._fresh, []
            published, self._published = self._published, []
            self._running += 1
            task = loop.create_task(self._one_round(loop, fresh, published))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one_round(
        self,
        loop: asyncio.AbstractEventLoop,
        fresh: list[_Operation],
        published: list[_Operation],
    ) -> None:
        try:
            await asyncio.to_thread(self._round, fresh, published)
        finally:
            self._running -= 1
        finished = published + [op for op in fresh if op.error or not op.publish]
        # Renamed in this round: durable only after a round that starts from now on.
        self._published += [op for op in fresh if not op.error and op.publish]
        for op in finished:
            if op.done.done():
                continue
            if op.error is None:
                op.done.set_result(None)
            else:
                op.done.set_exception(op.error)
        self._start_rounds(loop)

    def _timed(self, seconds: float) -> None:
        self._average = seconds if not self._average else 0.7 * self._average + 0.3 * seconds
        if self._average > SLOW_ROUND:
            self._slow_until = time.monotonic() + COOL_DOWN
            self._average = 0.0  # after the cool-down, judged afresh

    def slow(self) -> bool:
        """Whether recent rounds were slow enough that fsyncs file by file do better."""
        return time.monotonic() < self._slow_until

    def _round(self, fresh: list[_Operation], published: list[_Operation]) -> None:
        for op in fresh:
            try:
                op.state = op.prepare()
            except Exception as exc:
                op.error = exc
        prepared = [op for op in fresh if op.error is None]
        try:
            self.rounds += 1
            assert syncfs is not None
            started = time.monotonic()
            syncfs(self._fd)
            self._timed(time.monotonic() - started)
        except OSError as exc:
            error = StorageError(f"sync failed: {exc.strerror}")
            for op in published + prepared:
                op.error = error
            for op in prepared:
                if op.discard is not None and op.publish is not None:
                    with contextlib.suppress(Exception):
                        op.discard(op.state)
            return
        for op in prepared:
            if op.publish is None:
                continue
            try:
                op.publish(op.state)
            except Exception as exc:
                op.error = exc
                if op.discard is not None:
                    with contextlib.suppress(Exception):
                        op.discard(op.state)
