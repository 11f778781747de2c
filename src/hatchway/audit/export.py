"""The audit trail as JSON Lines or CSV, a batch of events at a time (no web imports).

JSON Lines: one object per event, the shape ``hatchway audit --json`` prints. CSV: one
header row, then one row per event, with ``detail`` as compact JSON. A spreadsheet runs a
cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula
(CSV injection, OWASP): such a cell gets a leading ``'``, which spreadsheets show as text
and which a reader can strip. Everything a client sent (user agent, account names tried,
repository names) is in this file, so every cell is treated so.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Generator, Iterable
from datetime import UTC, datetime
from typing import Any

from hatchway.metadata import AuditRecord

FORMATS = {"jsonl": "application/jsonl", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS = (
    "id",
    "time",
    "event",
    "outcome",
    "account",
    "client_addr",
    "user_agent",
    "repository",
    "scopes_requested",
    "scopes_granted",
    "detail",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_json(record: AuditRecord) -> dict[str, Any]:
    """One event as ``hatchway audit --json`` prints it."""
    return {
        "id": record.id,
        "time": rfc3339(record.time),
        "event": record.event,
        "outcome": record.outcome,
        "account": record.account,
        "client_addr": record.client_addr,
        "user_agent": record.user_agent,
        "repository": record.repository,
        "scopes_requested": list(record.scopes_requested),
        "scopes_granted": list(record.scopes_granted),
        "detail": record.detail,
    }


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_row(record: AuditRecord) -> list[str]:
    cells = [
        str(record.id),
        rfc3339(record.time),
        record.event,
        record.outcome,
        record.account or "",
        record.client_addr or "",
        record.user_agent or "",
        record.repository or "",
        " ".join(record.scopes_requested),
        " ".join(record.scopes_granted),
        json.dumps(record.detail, separators=(",", ":"), sort_keys=True),
    ]
    return [safe_cell(c) for c in cells]


def jsonl_chunks(batches: Iterable[list[AuditRecord]]) -> Generator[bytes, None, None]:
    """One bytes chunk per batch of events."""
    for batch in batches:
        yield "".join(json.dumps(as_json(r), separators=(",", ":")) + "\n" for r in batch).encode()


def csv_chunks(batches: Iterable[list[AuditRecord]]) -> Generator[bytes, None, None]:
    """The header row, then one bytes chunk per batch of events (RFC 4180, CRLF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_csv_row(r) for r in batch)
        yield buffer.getvalue().encode()


def chunks(fmt: str, batches: Iterable[list[AuditRecord]]) -> Generator[bytes, None, None]:
    """``fmt`` is a key of :data:`FORMATS`."""
    if fmt == "csv":
        return csv_chunks(batches)
    if fmt == "jsonl":
        return jsonl_chunks(batches)
    raise ValueError(f"unknown export format {fmt[:20]!r}: expected jsonl or csv")
