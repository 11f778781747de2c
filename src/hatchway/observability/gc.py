"""gc metrics: ``hatchway gc`` records each run in the database, and every server's
``/metrics`` reads the totals at scrape time (gc is another process, maybe elsewhere).

They describe the whole deployment, so every replica reports the same values: aggregate
them with ``max``, not ``sum``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from hatchway.config.model import Config
from hatchway.metadata import MetadataStore
from hatchway.metadata.engine import database_dsn
from hatchway.metadata.gcruns import GcRunStore

if TYPE_CHECKING:  # imported at the first scrape (worker memory when metrics are off)
    from prometheus_client.core import Metric
    from prometheus_client.registry import Collector

log = logging.getLogger("hatchway.metrics")


def record_run(
    store: GcRunStore,
    *,
    started: float,
    outcome: str,
    dry_run: bool,
    blobs_deleted: int,
    bytes_freed: int,
) -> None:
    """Record a run that began at ``started`` (``time.monotonic()``) and ends now."""
    store.record(
        finished_at=time.time(),
        duration=max(0.0, time.monotonic() - started),
        outcome=outcome,
        dry_run=dry_run,
        blobs_deleted=blobs_deleted,
        bytes_freed=bytes_freed,
    )


class GcCollector:
    """Asks the database at every scrape (one short read); a failing database leaves the
    gc metrics out of that scrape rather than failing it."""

    def __init__(self, store: Callable[[], GcRunStore]) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            totals = self._store().totals()
        except Exception as exc:
            log.warning("gc metrics unavailable: %s", type(exc).__name__)
            return
        runs = CounterMetricFamily(
            "hatchway_gc_runs", "hatchway gc runs recorded, by outcome.", labels=["outcome"]
        )
        for outcome in sorted({"success", "failure", *totals.runs}):
            runs.add_metric([outcome], totals.runs.get(outcome, 0))
        yield runs
        yield CounterMetricFamily(
            "hatchway_gc_duration_seconds", "Time spent in gc runs.", value=totals.duration
        )
        yield CounterMetricFamily(
            "hatchway_gc_bytes_freed", "Blob bytes deleted by gc.", value=totals.bytes_freed
        )
        yield CounterMetricFamily(
            "hatchway_gc_blobs_deleted", "Blobs deleted by gc.", value=totals.blobs_deleted
        )
        if totals.last_finished_at is not None and totals.last_duration is not None:
            yield GaugeMetricFamily(
                "hatchway_gc_last_run_timestamp_seconds",
                "When the latest gc run ended (Unix time).",
                value=totals.last_finished_at,
            )
            yield GaugeMetricFamily(
                "hatchway_gc_last_run_duration_seconds",
                "How long the latest gc run took.",
                value=totals.last_duration,
            )


def gc_collector(config: Config) -> Callable[[], Collector]:
    """The collector for this process: its own database handle, made on first scrape
    (after fork) and kept."""
    dsn = database_dsn(config)
    made: dict[int, MetadataStore] = {}

    def store() -> GcRunStore:
        pid = os.getpid()
        if pid not in made:
            made.clear()
            made[pid] = MetadataStore(dsn)
        return made[pid].gc_runs

    return lambda: GcCollector(store)
