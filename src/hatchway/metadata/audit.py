"""The audit trail: one row per login, grant, refusal or account change.

Secrets never reach the table: ``detail`` is scrubbed (secret-looking keys, hatchway token
prefixes and JWTs are replaced) and client-supplied strings are cut to the column size.
``record_many`` writes a batch in one transaction, for callers that buffer under load;
``write_batch`` also returns the new rows' ids and updates the ``detail`` (a count) of rows
written before, in the same transaction. ``purge``
deletes old events in small transactions, so servers writing beside it never wait long.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from hatchway.metadata.engine import Database
from hatchway.metadata.records import AuditEvent, AuditRecord
from hatchway.metadata.tables import audit_events

REDACTED = "[redacted]"
PURGE_BATCH = 5_000
# "token" alone is a secret; "token_id" or "token_name" are not.
_SECRET_KEY_RE = re.compile(
    r"(^|[_-])(pass(word|wd)?|secret|authorization|credentials?|cookie|api[_-]?key)$"
    r"|^((refresh|access|id)[_-])?token$",
    re.I,
)
_SECRET_VALUE_RE = re.compile(r"hwr?_[A-Za-z0-9_-]{16,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.")


def scrub(value: Any) -> Any:
    """A JSON-safe copy of ``value`` with anything secret-looking replaced."""
    if isinstance(value, dict):
        return {
            str(k): REDACTED if _SECRET_KEY_RE.search(str(k)) else scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUE_RE.sub(REDACTED, value)[:2000]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))


def _cut(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


def _row(event: AuditEvent) -> dict[str, Any]:
    return {
        "time": event.time,
        "event": event.event[:64],
        "account": _cut(event.account, 128),
        "outcome": str(event.outcome)[:16],
        "client_addr": _cut(event.client_addr, 64),
        "user_agent": _cut(event.user_agent, 512),
        "repository": _cut(event.repository, 512),
        "scopes_requested": " ".join(event.scopes_requested),
        "scopes_granted": " ".join(event.scopes_granted),
        "detail": scrub(event.detail),
    }


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, event: AuditEvent) -> None:
        self.record_many([event])

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        """Insert ``events`` in one transaction (no ids back: RETURNING costs a third more,
        and this is what every push waits for)."""
        if not events:
            return
        with self._db.write() as conn:
            conn.execute(insert(audit_events), [_row(e) for e in events])

    def write_batch(
        self, events: Sequence[AuditEvent], updates: Mapping[int, dict[str, Any]] | None = None
    ) -> list[int]:
        """Insert ``events`` and replace the ``detail`` of the rows ``updates`` names, in one
        transaction; returns the new rows' ids, in the order of ``events``."""
        if not events and not updates:
            return []
        ids: list[int] = []
        with self._db.write() as conn:
            if events:
                stmt = insert(audit_events).returning(
                    audit_events.c.id, sort_by_parameter_order=True
                )
                ids = list(conn.execute(stmt, [_row(e) for e in events]).scalars())
            for row_id, detail in (updates or {}).items():
                conn.execute(
                    update(audit_events)
                    .where(audit_events.c.id == row_id)
                    .values(detail=scrub(detail))
                )
        return ids

    def list(
        self,
        *,
        account: str | None = None,
        event: str | None = None,
        repository: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Newest first (by event time: workers write their batches at different moments,
        so ids are not in time order); ``since`` and ``until`` are inclusive."""
        order = (audit_events.c.time.desc(), audit_events.c.id.desc())
        stmt = select(audit_events).order_by(*order).limit(limit)
        for column, value in (
            (audit_events.c.account, account),
            (audit_events.c.event, event),
            (audit_events.c.repository, repository),
            (audit_events.c.outcome, outcome),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if since is not None:
            stmt = stmt.where(audit_events.c.time >= since)
        if until is not None:
            stmt = stmt.where(audit_events.c.time <= until)
        with self._db.read() as conn:
            return [
                AuditRecord(
                    id=row.id,
                    time=row.time,
                    event=row.event,
                    outcome=row.outcome,
                    account=row.account,
                    client_addr=row.client_addr,
                    user_agent=row.user_agent,
                    repository=row.repository,
                    scopes_requested=tuple(row.scopes_requested.split()),
                    scopes_granted=tuple(row.scopes_granted.split()),
                    detail=dict(row.detail),
                )
                for row in conn.execute(stmt)
            ]

    def count_before(self, before: datetime) -> int:
        """How many events are older than ``before`` (what :meth:`purge` would delete)."""
        stmt = select(func.count()).select_from(audit_events).where(audit_events.c.time < before)
        with self._db.read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def purge(self, before: datetime) -> int:
        """Delete events older than ``before``; returns how many.

        A few thousand rows per transaction: one huge delete would hold SQLite's write
        lock for as long as it runs, and the servers' audit writes would wait behind it.
        """
        oldest = (
            select(audit_events.c.id)
            .where(audit_events.c.time < before)
            .order_by(audit_events.c.id)
            .limit(PURGE_BATCH)
        )
        deleted = 0
        while True:
            with self._db.write() as conn:
                ids = list(conn.execute(oldest).scalars())
                if ids:
                    conn.execute(delete(audit_events).where(audit_events.c.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < PURGE_BATCH:
                return deleted
