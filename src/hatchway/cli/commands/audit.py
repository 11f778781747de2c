"""``hatchway audit``: read the audit trail (logins, grants, pushes, pulls, refusals).

Newest first. Text output is aligned columns for reading and ``grep``; ``--json`` prints
one JSON object per line (times in RFC 3339, UTC) for ``jq`` or a log shipper. The
servers write events in batches, so the last half second may not be there yet.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from hatchway.cli.commands._accounts import errors, open_store, table
from hatchway.cli.common import ConfigOption, DataOption, fail
from hatchway.config.model import parse_duration
from hatchway.metadata import AuditRecord, Outcome

OUTCOMES = tuple(o.value for o in Outcome)
TimeOption = Annotated[
    str | None,
    typer.Option(help="A duration ago (30m, 1h, 168h) or a time (2026-11-23T10:00:00Z)."),
]


def parse_time(value: str, now: datetime) -> datetime:
    """``1h`` (that long before ``now``) or an ISO 8601 time; a time without zone is UTC."""
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise fail(
            f"invalid time {value[:60]!r}: expected a duration (1h, 30m) or an RFC 3339 time "
            "(2026-11-23T10:00:00Z)",
            2,
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_json(record: AuditRecord) -> dict[str, Any]:
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


def _value(value: object) -> str:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def summary(record: AuditRecord) -> str:
    """What else is worth a glance on one line: scopes, then the detail's keys."""
    parts: list[str] = []
    if record.scopes_granted or record.event == "token":
        parts.append(f"granted={','.join(record.scopes_granted) or '-'}")
    if record.scopes_requested and record.scopes_requested != record.scopes_granted:
        parts.append(f"requested={','.join(record.scopes_requested)}")
    parts += [f"{k}={_value(v)}" for k, v in record.detail.items() if v not in (None, "", [])]
    return " ".join(parts)


def audit(
    config: ConfigOption = None,
    data: DataOption = None,
    account: Annotated[str | None, typer.Option(help="Only this account's events.")] = None,
    repository: Annotated[str | None, typer.Option(help="Only events on this repository.")] = None,
    outcome: Annotated[str | None, typer.Option(help=f"One of: {', '.join(OUTCOMES)}.")] = None,
    event: Annotated[
        str | None,
        typer.Option(help="login, token, refresh, push, pull, delete, user.add, access.rule.add…"),
    ] = None,
    since: TimeOption = None,
    until: TimeOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="At most this many.")] = 100,
    json_: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print audit events, newest first."""
    if outcome is not None and outcome not in OUTCOMES:
        raise fail(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}", 2)
    now = datetime.now(UTC)
    start = parse_time(since, now) if since else None
    end = parse_time(until, now) if until else None
    store = open_store(config, data)
    try:
        with errors():
            found = store.audit.list(
                account=account,
                repository=repository,
                outcome=outcome,
                event=event,
                since=start,
                until=end,
                limit=limit,
            )
    finally:
        store.dispose()
    if json_:
        for record in found:
            typer.echo(json.dumps(as_json(record), separators=(",", ":")))
        return
    if not found:
        typer.echo("No audit events match.", err=True)
        return
    table(
        ["TIME", "EVENT", "OUTCOME", "ACCOUNT", "CLIENT", "REPOSITORY", "DETAIL"],
        [
            [
                r.time.strftime("%Y-%m-%d %H:%M:%SZ"),
                r.event,
                r.outcome,
                r.account or "-",
                r.client_addr or "-",
                r.repository or "-",
                summary(r),
            ]
            for r in found
        ],
    )
