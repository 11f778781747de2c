"""The audit sink: changes are committed before they are acknowledged; the rest is batched.

Two paths, one background thread that writes each event as one structured log line
(``hatchway.audit``) and to the database:

- :meth:`AuditSink.commit`, for changes (a push, a delete): the caller waits on the returned
  future, which is resolved once the event is committed, and only then answers, so a
  ``kill -9`` never loses the trace of an acknowledged change. Group commit keeps that
  cheap under load: the thread writes every change queued while it was writing the last
  group in one transaction, so 32 concurrent pushes cost a few commits, not 32.
- :meth:`AuditSink.record`, for reads and logins: a token grant must cost microseconds and a
  manifest pull (thousands a second) no more than a deque append, so these queue in memory
  and are written every ``interval``. A ``kill -9`` loses at most that much of them;
  :meth:`AuditSink.close` flushes on a clean stop.

Repeats are folded so that volume does not become rows: successful pulls of one flush are
one event with a ``count``, and failed or throttled attempts (bad logins, bad refresh
tokens, bad credentials on the registry) from one account and address are one row per
``window`` whose ``count`` (and ``last``) is updated as more arrive, so a password-guessing
flood costs a few rows, not one per guess.

With no writer (no database: open mode, an external token issuer) events are only logged,
and :meth:`AuditSink.commit` logs before it returns.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from datetime import datetime, timedelta
from typing import Any, Protocol

from hatchway.metadata.records import AuditEvent, utcnow

log = logging.getLogger("hatchway.audit")

FLUSH_INTERVAL = 0.5
MAX_BUFFERED = 10_000
REPEAT_WINDOW = 60.0  # seconds one row keeps counting an (account, address)'s failures
MAX_OPEN_WINDOWS = 10_000
_REPEATED_OUTCOMES = frozenset({"failure", "throttled"})


class AuditWriter(Protocol):
    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """Insert ``events`` in one transaction."""
        ...

    def write_batch(
        self, events: Sequence[AuditEvent], updates: Mapping[int, dict[str, Any]] | None = None
    ) -> list[int]:
        """Insert ``events`` and replace the ``detail`` of rows ``updates`` names, in one
        transaction; the ids of the inserted rows, in order."""
        ...


class AuditWriteError(Exception):
    """A change's audit event could not be written; the change must not be acknowledged."""


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
    for key in ("reason", "count"):
        if key in event.detail:
            fields[key] = event.detail[key]
    return json.dumps(fields)


def _detail_key(detail: dict[str, Any]) -> str:
    own = {k: v for k, v in detail.items() if k not in ("count", "last")}
    return json.dumps(own, sort_keys=True, default=str)


def repeat_key(event: AuditEvent) -> tuple[object, ...] | None:
    """What makes two failed attempts "the same": not the user agent, which the client
    chooses freely, so a flood is folded per account and address as it should be."""
    if str(event.outcome) not in _REPEATED_OUTCOMES:
        return None
    return (
        event.event,
        str(event.outcome),
        event.account,
        event.client_addr,
        event.repository,
        event.scopes_requested,
        _detail_key(event.detail),
    )


def _fold_key(event: AuditEvent) -> tuple[object, ...] | None:
    if event.event == "pull" and str(event.outcome) == "success":
        return (
            "pull",
            event.account,
            event.client_addr,
            event.user_agent,
            event.repository,
            _detail_key(event.detail),
        )
    return repeat_key(event)


def _count(event: AuditEvent) -> int:
    return int(event.detail.get("count", 1))


def _merged(first: AuditEvent, later: AuditEvent) -> AuditEvent:
    """``first`` standing for both: its time, the summed count; for failures, the time
    of the latest attempt as ``last``."""
    detail = {**first.detail, "count": _count(first) + _count(later)}
    if repeat_key(first) is not None:
        detail["last"] = later.detail.get("last") or _iso(later.time)
    return dataclasses.replace(first, detail=detail)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def coalesce(batch: list[AuditEvent]) -> list[AuditEvent]:
    """Fold repeated successful pulls, and repeated failures, of one flush into one event
    with a ``count``.

    A busy registry serves thousands of manifest GETs a second, most of them the same
    image to the same client; one row per pull would make the audit writer the costliest
    part of serving. Every pull is still accounted for: the event keeps the first time
    and says how many there were.
    """
    folded: list[AuditEvent] = []
    seen: dict[tuple[object, ...], int] = {}
    for event in batch:
        key = _fold_key(event)
        if key is None:
            folded.append(event)
            continue
        index = seen.get(key)
        if index is None:
            seen[key] = len(folded)
            folded.append(event)
            continue
        folded[index] = _merged(folded[index], event)
    return folded


@dataclasses.dataclass(slots=True)
class _Window:
    """A failure row still counting: its id, the event as stored, when it stops."""

    row: int
    event: AuditEvent
    until: datetime


def _resolve(future: Future[None], error: BaseException | None = None) -> None:
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
    except InvalidStateError:  # the waiter gave up; the event is written all the same
        pass


class AuditSink:
    def __init__(
        self,
        writer: AuditWriter | None,
        interval: float = FLUSH_INTERVAL,
        window: float = REPEAT_WINDOW,
    ) -> None:
        self._writer = writer
        self._interval = interval
        self._window = timedelta(seconds=window)
        self._events: deque[AuditEvent] = deque(maxlen=MAX_BUFFERED)
        self._changes: deque[tuple[AuditEvent, Future[None]]] = deque()
        self._open: dict[tuple[object, ...], _Window] = {}
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
        self._thread.start()

    def record(self, event: AuditEvent) -> None:
        """Queue ``event`` (thread-safe: deque appends are atomic)."""
        self._events.append(event)

    def commit(self, event: AuditEvent) -> Future[None]:
        """Write ``event`` durably; the future is done once it is committed, or fails with
        :class:`AuditWriteError`. Answer the change it records only after that."""
        future: Future[None] = Future()
        if self._writer is None or self._stopped:
            self._write_changes([(event, future)])  # a log line, or a late write at stop
            return future
        self._changes.append((event, future))
        self._wake.set()
        if self._stopped:  # closed meanwhile: the thread may have drained its last group
            self._commit_changes()
        return future

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
            self._write_batch(self._writer, batch)

    def _write_batch(self, writer: AuditWriter, batch: list[AuditEvent]) -> None:
        """Insert ``batch``, except failures that continue an open row: those add to its
        count instead."""
        fresh: list[AuditEvent] = []
        keys: list[tuple[object, ...] | None] = []
        updates: dict[int, AuditEvent] = {}
        for event in batch:
            key = repeat_key(event)
            window = self._open.get(key) if key is not None else None
            if window is not None and event.time < window.until:
                window.event = _merged(window.event, event)
                updates[window.row] = window.event
                continue
            fresh.append(event)
            keys.append(key)
        try:
            ids = writer.write_batch(fresh, {row: e.detail for row, e in updates.items()})
        except Exception:
            log.exception("could not write %d audit events", len(batch))
            self._open.clear()  # their counts are unknown now: start new rows
            return
        for key, event, row in zip(keys, fresh, ids, strict=True):
            if key is not None:
                self._open[key] = _Window(row, event, event.time + self._window)
        now = utcnow()
        self._open = {k: w for k, w in self._open.items() if w.until > now}
        if len(self._open) > MAX_OPEN_WINDOWS:  # a spray of addresses: bound the memory
            self._open.clear()

    def _commit_changes(self) -> None:
        group: list[tuple[AuditEvent, Future[None]]] = []
        while True:
            try:
                group.append(self._changes.popleft())
            except IndexError:
                break
        if group:
            self._write_changes(group)

    def _write_changes(self, group: list[tuple[AuditEvent, Future[None]]]) -> None:
        events = [event for event, _ in group]
        if log.isEnabledFor(logging.INFO):
            for event in events:
                log.info(_line(event))
        error: BaseException | None = None
        if self._writer is not None:
            try:
                self._writer.record_many(events)
            except Exception as exc:
                log.exception("could not write %d audit events of changes", len(events))
                # The type only: the log has the rest, a database error may quote the row.
                kind = type(exc).__name__
                error = AuditWriteError(f"the audit trail could not be written ({kind})")
        for _, future in group:
            _resolve(future, error)

    def _run(self) -> None:
        deadline = 0.0
        while not self._stopped:
            self._wake.wait(max(0.0, deadline - time.monotonic()))
            self._wake.clear()
            self._commit_changes()
            if time.monotonic() >= deadline:
                self.flush()
                deadline = time.monotonic() + self._interval

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)
        self._commit_changes()
        self.flush()
