"""Admin: the audit trail, newest first, with filters (account, event, repository, outcome,
time range), pages by cursor, and JSON Lines / CSV export of what the filters select."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from hatchway.auth.adminaudit import OUTCOMES
from hatchway.http.ui.middleware import UiError
from hatchway.http.ui.pages.admin import Refused, call, require_admin
from hatchway.http.ui.render import render
from hatchway.http.ui.services import AUDIT_TRAIL
from hatchway.metadata.auditquery import AuditFilter

PAGE = 50
FIELDS = ("account", "event", "repository", "outcome", "since", "until")
FORMATS = {"jsonl": "application/jsonl; charset=utf-8", "csv": "text/csv; charset=utf-8"}


def _when(value: str, field: str) -> datetime | None:
    """``2026-12-07T10:00`` (a datetime-local input, read as UTC) or an ISO date/time."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Refused(422, f"{field}: expected a date and time such as 2026-12-07T10:00") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _filter(values: dict[str, str]) -> AuditFilter:
    return AuditFilter(
        account=values["account"] or None,
        event=values["event"] or None,
        repository=values["repository"] or None,
        outcome=values["outcome"] or None,
        since=_when(values["since"], "since"),
        until=_when(values["until"], "until"),
    )


def _values(request: web.Request) -> dict[str, str]:
    return {k: request.query.get(k, "").strip()[:255] for k in FIELDS}


async def audit(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    values = _values(request)
    cursor = request.query.get("cursor") or None
    service = request.app[AUDIT_TRAIL]
    error = None
    events: list[object] = []
    following = None
    try:
        where = _filter(values)
        events_found, next_cursor = await call(lambda: service.page(actor, where, cursor, PAGE))
        events = list(events_found)
        if next_cursor is not None:
            following = "/ui/admin/audit?" + urlencode({**values, "cursor": next_cursor})
    except Refused as exc:
        error = exc.message
    chosen = {k: v for k, v in values.items() if v}
    return render(
        request,
        "admin_audit.html",
        status=422 if error else 200,
        title="Audit trail",
        values=values,
        outcomes=OUTCOMES,
        events=events,
        following=following,
        export={f: "/ui/admin/audit/export?" + urlencode({**chosen, "format": f}) for f in FORMATS},
        detail=lambda d: json.dumps(d, sort_keys=True, default=str)[:500],
        error=error,
    )


async def export(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    fmt = request.query.get("format", "jsonl")
    if fmt not in FORMATS:
        raise UiError(422, "Unknown format", "Export as jsonl or csv.")
    service = request.app[AUDIT_TRAIL]
    try:
        where = _filter(_values(request))
        produced: Iterator[bytes] = await call(lambda: service.export(actor, where, fmt))
    except Refused as exc:
        raise UiError(422, "Bad filter", exc.message) from None
    response = web.StreamResponse(
        headers={
            "Content-Type": FORMATS[fmt],
            "Content-Disposition": f'attachment; filename="audit.{fmt}"',
        }
    )
    await response.prepare(request)
    while (chunk := await asyncio.to_thread(next, produced, None)) is not None:
        await response.write(chunk)
    await response.write_eof()
    return response


ROUTES = (
    ("GET", "/ui/admin/audit", audit),
    ("GET", "/ui/admin/audit/export", export),
)
