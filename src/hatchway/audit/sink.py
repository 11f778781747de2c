"""Buffered audit sink: recording an event never waits for the database.

A token grant must cost microseconds, not a committed SQL insert (an fsync each on
SQLite), so events queue in memory and a background thread writes them in batches.
Each event is also one structured log line (``hatchway.audit``) at once, so nothing is
lost from the log if the process dies before the next flush.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from typing import Protocol

from hatchway.metadata.records import AuditEvent

log = logging.getLogger("hatchway.audit")

FLUSH_INTERVAL = 0.5
MAX_BUFFERED = 10_000


class AuditWriter(Protocol):
    def record_many(self, events: list[AuditEvent]) -> None: ...


class AuditSink:
    def __init__(self, writer: AuditWriter, interval: float = FLUSH_INTERVAL) -> None:
        self._writer = writer
        self._interval = interval
        self._events: deque[AuditEvent] = deque(maxlen=MAX_BUFFERED)
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
        self._thread.start()

    def record(self, event: AuditEvent) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                json.dumps(
                    {
                        "event": event.event,
                        "outcome": str(event.outcome),
                        "account": event.account,
                        "client": event.client_addr,
                        "repository": event.repository,
                        "granted": list(event.scopes_granted),
                    }
                )
            )
        self._events.append(event)

    def flush(self) -> None:
        batch: list[AuditEvent] = []
        while self._events:
            batch.append(self._events.popleft())
        if batch:
            try:
                self._writer.record_many(batch)
            except Exception:
                log.exception("could not write %d audit events", len(batch))

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()
