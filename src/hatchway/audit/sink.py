"""Buffered audit sink: recording an event never waits for the database or the log.

A token grant must cost microseconds, and a manifest pull (thousands a second) no more
than a deque append, so events queue in memory and a background thread writes each as
one structured log line (``hatchway.audit``) and the batch to the database every
``interval``. With no writer (no database: open or htpasswd-less modes) events are only
logged. What is still queued when the process is killed outright is lost (at most one
interval's worth); :meth:`AuditSink.close` flushes on a clean stop.
"""

from __future__ import annotations

import dataclasses
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


def _line(event: AuditEvent) -> str:
    fields: dict[str, object] = {
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "event": event.event,
        "outcome": str(event.outcome),
        "account": event.account,
        "client": event.client_addr,
        "repository": event.repository,
    }
    if event.scopes_granted:
        fields["granted"] = list(event.scopes_granted)
    if "reason" in event.detail:
        fields["reason"] = event.detail["reason"]
    return json.dumps(fields)


def coalesce(batch: list[AuditEvent]) -> list[AuditEvent]:
    """Fold repeated successful pulls of one flush into one event with a ``count``.

    A busy registry serves thousands of manifest GETs a second, most of them the same
    image to the same client; one row per pull would make the audit writer the costliest
    part of serving. Every pull is still accounted for: the event keeps the first time
    and says how many there were.
    """
    folded: list[AuditEvent] = []
    seen: dict[tuple[object, ...], int] = {}
    for event in batch:
        if event.event != "pull" or str(event.outcome) != "success":
            folded.append(event)
            continue
        key = (
            event.account,
            event.client_addr,
            event.user_agent,
            event.repository,
            tuple(sorted(event.detail.items())),
        )
        index = seen.get(key)
        if index is None:
            seen[key] = len(folded)
            folded.append(event)
            continue
        first = folded[index]
        count = int(first.detail.get("count", 1)) + 1
        folded[index] = dataclasses.replace(first, detail={**first.detail, "count": count})
    return folded


class AuditSink:
    def __init__(self, writer: AuditWriter | None, interval: float = FLUSH_INTERVAL) -> None:
        self._writer = writer
        self._interval = interval
        self._events: deque[AuditEvent] = deque(maxlen=MAX_BUFFERED)
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
        self._thread.start()

    def record(self, event: AuditEvent) -> None:
        """Queue ``event`` (thread-safe: deque appends are atomic)."""
        self._events.append(event)

    def flush(self) -> None:
        batch: list[AuditEvent] = []
        while True:
            try:
                batch.append(self._events.popleft())
            except IndexError:
                break
        if not batch:
            return
        batch = coalesce(batch)
        if log.isEnabledFor(logging.INFO):
            for event in batch:
                log.info(_line(event))
        if self._writer is not None:
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
