"""``hatchway audit``: read the audit trail (logins, grants, pushes, pulls, refusals), and
``hatchway audit purge`` to delete old events.

Newest first. Text output is aligned columns for reading and ``grep``; ``--json`` prints
one JSON object per line (times in RFC 3339, UTC) for ``jq`` or a log shipper. Changes
(pushes, deletes, account, token and rule changes) are written before they are
acknowledged; the servers write pulls and logins in batches, so the last half second of
those may not be there yet.

``audit`` is a group that runs its callback when no subcommand is given, so every
``hatchway audit [filters]`` invocation works as it did before ``purge`` existed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from hatchway.cli.commands._accounts import audit as record_change
from hatchway.cli.commands._accounts import errors, open_store, table
from hatchway.cli.common import ConfigOption, DataOption, fail
from hatchway.config.model import parse_duration
from hatchway.metadata import AuditRecord, Outcome

OUTCOMES = tuple(o.value for o in Outcome)
TIME_HELP = "a duration ago (30m, 12h, 7d, 2w) or a time (2026-11-23, 2026-11-23T10:00:00Z)"
TimeOption = Annotated[str | None, typer.Option(help=TIME_HELP[0].upper() + TIME_HELP[1:] + ".")]
_DAYS_RE = re.compile(r"(\d+)([dw])(.*)")

app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Print audit events, newest first; `purge` deletes old ones.",
)


@dataclass(frozen=True)
class _Place:
    """--config/--data given before a subcommand, for the subcommand to use."""

    config: Path | None
    data: Path | None


def _seconds_ago(value: str) -> float:
    """Go durations (``90m``, ``168h``) plus days and weeks (``90d``, ``2w``, ``1d12h``)."""
    text = value.strip()
    days = _DAYS_RE.fullmatch(text)
    if days is None:
        return parse_duration(text)
    number, unit, rest = days.groups()
    return int(number) * (86400 if unit == "d" else 604800) + (parse_duration(rest) if rest else 0)


def parse_time(value: str, now: datetime) -> datetime:
    """``1h`` or ``7d`` (that long before ``now``) or an ISO 8601 date or time; a time
    without zone is UTC."""
    try:
        return now - timedelta(seconds=_seconds_ago(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise fail(
            f"invalid time {value[:60]!r}: expected a duration (1h, 30m, 7d) or an RFC 3339 "
            "time (2026-11-23T10:00:00Z)",
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


@app.callback()
def audit(
    ctx: typer.Context,
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
    """Print audit events, newest first; `purge` deletes old ones."""
    if ctx.invoked_subcommand is not None:
        filters = (account, repository, outcome, event, since, until)
        if any(f is not None for f in filters) or limit != 100 or json_:
            raise fail(f"the listing options do not apply to `{ctx.invoked_subcommand}`", 2)
        ctx.obj = _Place(config, data)
        return
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


@app.command()
def purge(
    ctx: typer.Context,
    before: Annotated[
        str,
        typer.Option(
            "--before", help=f"Delete the events older than this: {TIME_HELP}.", show_default=False
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the events it would delete.")
    ] = False,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Delete audit events older than --before and print how many (itself an audit event)."""
    place = ctx.obj if isinstance(ctx.obj, _Place) else _Place(None, None)
    now = datetime.now(UTC)
    cutoff = parse_time(before, now)
    if cutoff > now:
        raise fail(f"--before {before[:60]!r} is in the future: that would delete everything", 2)
    store = open_store(config or place.config, data or place.data)
    try:
        with errors():
            if dry_run:
                count = store.audit.count_before(cutoff)
            else:
                count = store.audit.purge(cutoff)
                record_change(store, "audit.purge", None, before=rfc3339(cutoff), deleted=count)
    finally:
        store.dispose()
    verb = "Would delete" if dry_run else "Deleted"
    typer.echo(f"{verb} {count} audit events older than {rfc3339(cutoff)}.")
