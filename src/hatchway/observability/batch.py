"""Counts kept in plain dictionaries and written to the metrics at most once a second.

prometheus-client's multiprocess mode writes every increment to a memory-mapped file
under a lock: about 4 µs per value, and a request touches five or six. Here a request
adds to a dictionary (under a lock: auth code records from threads); a daemon thread in
each process writes the sums once a second, and a scrape in this process, and worker
shutdown, write them at once. Another worker's last second may be missing from a scrape,
and a worker killed with -9 loses at most that second.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the metrics module imports prometheus-client when used
    from prometheus_client import Counter, Histogram

log = logging.getLogger("hatchway.metrics")

INTERVAL = 1.0


class Batch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[Counter, tuple[str, ...]], float] = {}
        # histogram, labels -> [count per bucket ..., sum]
        self._observed: dict[tuple[Histogram, tuple[str, ...]], list[float]] = {}
        self._bounds: dict[Histogram, Sequence[float]] = {}
        # Threads do not survive fork: a child starts its own (os.getpid() per call
        # would cost a system call per increment).
        self._running = False
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._counts = {}
        self._observed = {}
        self._running = False

    def bounds(self, histogram: Histogram, buckets: Sequence[float]) -> None:
        self._bounds[histogram] = [*buckets, float("inf")]

    def _start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name="metrics-flush", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(INTERVAL)
            try:
                self.flush()
            except Exception:
                log.exception("writing metrics failed")

    def inc(self, counter: Counter, labels: tuple[str, ...], amount: float = 1.0) -> None:
        key = (counter, labels)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + amount
        if not self._running:
            self._start()

    def observe(self, histogram: Histogram, labels: tuple[str, ...], value: float) -> None:
        bounds = self._bounds[histogram]
        index = bisect.bisect_left(bounds, value)
        key = (histogram, labels)
        with self._lock:
            row = self._observed.get(key)
            if row is None:
                row = self._observed[key] = [0.0] * (len(bounds) + 1)
            row[index] += 1
            row[-1] += value
        if not self._running:
            self._start()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            observed, self._observed = self._observed, {}
        for (counter, labels), amount in counts.items():
            counter.labels(*labels).inc(amount)
        for (histogram, labels), row in observed.items():
            child = histogram.labels(*labels)
            buckets = getattr(child, "_buckets", None)
            total = getattr(child, "_sum", None)
            if buckets is None or total is None or len(buckets) != len(row) - 1:
                raise RuntimeError("prometheus_client's Histogram layout changed")
            for i, n in enumerate(row[:-1]):
                if n:
                    buckets[i].inc(n)
            total.inc(row[-1])
