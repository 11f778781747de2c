"""Reading the audit trail page by page: filters, a keyset cursor, and batches for export.

Newest first by (time, id), as ``AuditLog.list``. A page ends with the key of its last
row; the next page starts strictly after that key, so a page never repeats or skips a
row however many are written meanwhile, and no query ever uses OFFSET. :func:`batches`
walks the same way to stream an export of any size in constant memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, or_, select

from hatchway.metadata.engine import Database
from hatchway.metadata.records import AuditRecord
from hatchway.metadata.tables import audit_events

EXPORT_BATCH = 1_000


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every field optional; ``since`` and ``until`` are inclusive."""

    account: str | None = None
    event: str | None = None
    repository: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditKey:
    """Where a page ended: the (time, id) of its last, oldest row."""

    time: datetime
    id: int


def _select(where: AuditFilter, after: AuditKey | None, limit: int) -> Select[Any]:
    stmt = (
        select(audit_events)
        .order_by(audit_events.c.time.desc(), audit_events.c.id.desc())
        .limit(limit)
    )
    for column, value in (
        (audit_events.c.account, where.account),
        (audit_events.c.event, where.event),
        (audit_events.c.repository, where.repository),
        (audit_events.c.outcome, where.outcome),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if where.since is not None:
        stmt = stmt.where(audit_events.c.time >= where.since)
    if where.until is not None:
        stmt = stmt.where(audit_events.c.time <= where.until)
    if after is not None:
        # ``time <= t`` on its own, so the time index is searched from t down (a page deep
        # in the trail costs what the first one does), then the tie on t broken by id.
        stmt = stmt.where(
            audit_events.c.time <= after.time,
            or_(audit_events.c.time < after.time, audit_events.c.id < after.id),
        )
    return stmt


def _record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
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


def page(
    db: Database, where: AuditFilter, after: AuditKey | None, limit: int
) -> tuple[list[AuditRecord], AuditKey | None]:
    """Up to ``limit`` events after ``after``, and the key of the next page (None: the end)."""
    with db.read() as conn:
        rows = [_record(r) for r in conn.execute(_select(where, after, limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    following = AuditKey(rows[-1].time, rows[-1].id) if more and rows else None
    return rows, following


def batches(
    db: Database, where: AuditFilter, batch: int = EXPORT_BATCH
) -> Iterator[list[AuditRecord]]:
    """Every matching event, newest first, ``batch`` at a time (one short read each)."""
    after: AuditKey | None = None
    while True:
        rows, after = page(db, where, after, batch)
        if rows:
            yield rows
        if after is None:
            return
