"""The audit export streams: time and peak Python memory to export N events as JSON Lines
and CSV, against one page of the paginated listing, on SQLite.

    .venv/bin/python bench/audit_export.py [--events 200000]

Peak memory is tracemalloc's (Python objects), measured around the export alone: it
should stay flat as N grows (one batch of 1,000 events at a time), while the time grows
linearly. Printed: events/s and the peak, per format.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hatchway.auth.admin import Actor
from hatchway.auth.adminaudit import AuditService
from hatchway.metadata import AuditEvent, MetadataStore
from hatchway.metadata.auditquery import AuditFilter


def fill(store: MetadataStore, count: int) -> None:
    start = datetime.now(UTC) - timedelta(days=1)
    batch: list[AuditEvent] = []
    for i in range(count):
        batch.append(
            AuditEvent(
                "pull",
                "success",
                f"user{i % 500}",
                "192.0.2.7",
                "skopeo/1.13",
                repository=f"team/app{i % 50}",
                scopes_requested=("repository:team/app:pull",),
                scopes_granted=("repository:team/app:pull",),
                detail={"digest": f"sha256:{i:064x}"},
                time=start + timedelta(milliseconds=i),
            )
        )
        if len(batch) == 5_000:
            store.audit.record_many(batch)
            batch = []
    store.audit.record_many(batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = MetadataStore(f"sqlite:///{Path(tmp) / 'bench.db'}")
        fill(store, args.events)
        service = AuditService(store, lambda event: None)
        actor = Actor("bench", admin=True)
        for fmt in ("jsonl", "csv"):
            began = time.perf_counter()
            size = sum(len(chunk) for chunk in service.export(actor, AuditFilter(), fmt))
            took = time.perf_counter() - began
            # Memory in a second pass: tracemalloc slows Python down several times.
            tracemalloc.start()
            for _chunk in service.export(actor, AuditFilter(), fmt):
                pass
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"{fmt:5}  {args.events} events  {size / 1e6:7.1f} MB  {took:6.2f} s  "
                f"{args.events / took:9.0f} events/s  peak {peak / 1e6:5.1f} MB"
            )
        began = time.perf_counter()
        page, _ = service.page(actor, AuditFilter(account="user7"), None, 100)
        took = 1000 * (time.perf_counter() - began)
        print(f"page   {len(page)} events of one account (filtered, newest first)  {took:.1f} ms")
        store.dispose()


if __name__ == "__main__":
    main()
