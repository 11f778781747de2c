"""``hatchway audit`` (filters, text and JSON lines) and the buffered AuditSink."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from hatchway.audit.sink import AuditSink
from hatchway.cli.commands.audit import parse_time
from hatchway.cli.main import app
from hatchway.metadata import AuditEvent, MetadataStore

NOW = datetime.now(UTC).replace(microsecond=0)
ISO = "%Y-%m-%dT%H:%M:%S+00:00"
ZULU = "%Y-%m-%dT%H:%M:%SZ"


def ago(delta: timedelta, layout: str) -> Callable[[datetime], str]:
    """An absolute time, ``delta`` before the test's ``now`` (known only when it runs)."""
    return lambda now: (now - delta).strftime(layout)


FIELDS = {
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
}


@pytest.fixture
def now() -> datetime:
    """The time the events are placed around: taken per test, as the relative filters
    ("--since 25m") are read against the clock when the command runs."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def store(tmp_path: Path, now: datetime) -> Iterator[MetadataStore]:
    opened = MetadataStore(f"sqlite:///{tmp_path / 'hatchway.db'}")
    opened.audit.record_many(
        [
            AuditEvent(
                "login", "failure", "mallory", "198.51.100.7", time=now - timedelta(hours=3)
            ),
            AuditEvent(
                "token",
                "partial",
                "alice",
                "192.0.2.1",
                "docker/27",
                scopes_requested=("repository:team/app:pull,push",),
                scopes_granted=("repository:team/app:pull",),
                detail={"method": "basic", "denied": ["push denied: no rule allows push"]},
                time=now - timedelta(minutes=30),
            ),
            AuditEvent(
                "push",
                "denied",
                "alice",
                "192.0.2.1",
                repository="team/app",
                detail={"reason": "insufficient scope"},
                time=now - timedelta(minutes=20),
            ),
            AuditEvent(
                "pull",
                "success",
                "alice",
                "192.0.2.1",
                repository="team/app",
                detail={"reference": "1.0", "digest": "sha256:" + "a" * 64},
                time=now - timedelta(minutes=10),
            ),
        ]
    )
    yield opened
    opened.dispose()


def run(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["audit", *args, "--data", str(tmp_path)])


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_text_newest_first_and_aligned(tmp_path: Path, store: MetadataStore) -> None:
    result = run(tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "TIME",
        "EVENT",
        "OUTCOME",
        "ACCOUNT",
        "CLIENT",
        "REPOSITORY",
        "DETAIL",
    ]
    assert [line.split()[2] for line in lines[1:]] == ["pull", "push", "token", "login"]
    column = lines[0].index("OUTCOME")
    assert {line[column:].split()[0] for line in lines[1:]} == {
        "success",
        "denied",
        "partial",
        "failure",
    }
    assert "reference=1.0" in lines[1]
    assert "reason=insufficient scope" in lines[2]
    assert "granted=repository:team/app:pull" in lines[3]
    assert "requested=repository:team/app:pull,push" in lines[3]


def test_json_lines(tmp_path: Path, store: MetadataStore, now: datetime) -> None:
    records = json_lines(run(tmp_path, "--json"))
    assert [r["event"] for r in records] == ["pull", "push", "token", "login"]
    assert all(set(r) == FIELDS for r in records)
    pull = records[0]
    assert pull["time"] == (now - timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    assert datetime.fromisoformat(str(pull["time"])) == now - timedelta(minutes=10)
    assert pull["repository"] == "team/app"
    assert pull["detail"] == {"reference": "1.0", "digest": "sha256:" + "a" * 64}
    token = records[2]
    assert token["scopes_granted"] == ["repository:team/app:pull"]
    assert token["user_agent"] == "docker/27"


@pytest.mark.parametrize(
    ("args", "events"),
    [
        (["--account", "alice"], ["pull", "push", "token"]),
        (["--repository", "team/app"], ["pull", "push"]),
        (["--outcome", "denied"], ["push"]),
        (["--outcome", "partial"], ["token"]),
        (["--event", "login"], ["login"]),
        (["--since", "1h"], ["pull", "push", "token"]),
        (["--since", "25m", "--until", "15m"], ["push"]),
        (["--until", ago(timedelta(hours=1), ISO)], ["login"]),
        (["--since", ago(timedelta(minutes=15), ZULU)], ["pull"]),
        (["--limit", "2"], ["pull", "push"]),
        (["--account", "nobody"], []),
    ],
)
def test_filters(
    tmp_path: Path,
    store: MetadataStore,
    now: datetime,
    args: list[str | Callable[[datetime], str]],
    events: list[str],
) -> None:
    given = [a(now) if callable(a) else a for a in args]
    assert [r["event"] for r in json_lines(run(tmp_path, "--json", *given))] == events


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--outcome", "sideways"], "unknown outcome 'sideways'"),
        (["--since", "yesterday"], "invalid time 'yesterday'"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_usage(tmp_path: Path, store: MetadataStore, args: list[str], message: str) -> None:
    result = run(tmp_path, *args)
    assert result.exit_code == 2
    assert message in result.output


def test_parse_time_without_zone_is_utc() -> None:
    assert parse_time("2026-11-23T10:00:00", NOW) == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert parse_time("2026-11-23T12:00:00+02:00", NOW) == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert parse_time("90s", NOW) == NOW - timedelta(seconds=90)


class _Writer:
    def __init__(self) -> None:
        self.batches: list[list[AuditEvent]] = []

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        self.batches.append(list(events))

    def write_batch(
        self, events: Sequence[AuditEvent], updates: Mapping[int, dict[str, Any]] | None = None
    ) -> list[int]:
        self.record_many(events)
        return list(range(len(events)))


def test_sink_queues_then_logs_and_writes(caplog: pytest.LogCaptureFixture) -> None:
    writer = _Writer()
    sink = AuditSink(writer, interval=3600)
    try:
        with caplog.at_level(logging.INFO, logger="hatchway.audit"):
            sink.record(AuditEvent("pull", "success", "alice", repository="team/app"))
            sink.record(AuditEvent("push", "denied", "bob", detail={"reason": "no"}))
            assert caplog.records == []  # recording is an append; the thread logs
            sink.flush()
        lines = [json.loads(r.getMessage()) for r in caplog.records]
        assert [(x["event"], x["account"]) for x in lines] == [("pull", "alice"), ("push", "bob")]
        assert lines[1]["reason"] == "no"
        assert [[e.event for e in b] for b in writer.batches] == [["pull", "push"]]
    finally:
        sink.close()


def test_sink_without_writer_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    sink = AuditSink(None, interval=0.05)
    with caplog.at_level(logging.INFO, logger="hatchway.audit"):
        sink.record(AuditEvent("pull", "success", repository="team/app"))
        sink.close()
    assert '"event": "pull"' in caplog.text


def test_repeated_pulls_in_one_flush_become_one_event_with_a_count() -> None:
    from hatchway.audit.sink import coalesce
    from hatchway.metadata.records import AuditEvent

    pull = AuditEvent(
        "pull", "success", "alice", "10.0.0.1", "docker", "alice/app", detail={"reference": "1"}
    )
    other = AuditEvent(
        "pull", "success", "bob", "10.0.0.2", "docker", "alice/app", detail={"reference": "1"}
    )
    push = AuditEvent("push", "success", "alice", "10.0.0.1", "docker", "alice/app")
    folded = coalesce([pull, pull, push, other, pull, push])
    assert [e.event for e in folded] == ["pull", "push", "pull", "push"]
    assert folded[0].detail == {"reference": "1", "count": 3}
    assert folded[0].time == pull.time
    assert "count" not in folded[2].detail  # bob's single pull
    assert all("count" not in e.detail for e in folded if e.event == "push")


def test_purge_deletes_older_events_and_is_itself_audited(
    tmp_path: Path, store: MetadataStore, now: datetime
) -> None:
    result = run(tmp_path, "purge", "--before", "1h")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Deleted 1 audit events older than 20")
    records = json_lines(run(tmp_path, "--json"))
    assert [r["event"] for r in records] == ["audit.purge", "pull", "push", "token"]
    purge = records[0]
    assert purge["detail"]["deleted"] == 1
    assert purge["user_agent"] == "hatchway-cli"
    assert datetime.fromisoformat(str(purge["detail"]["before"])) <= now


def test_purge_dry_run_counts_and_changes_nothing(tmp_path: Path, store: MetadataStore) -> None:
    result = run(tmp_path, "purge", "--before", "25m", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Would delete 2 audit events older than ")
    assert len(json_lines(run(tmp_path, "--json"))) == 4


@pytest.mark.parametrize(
    ("before", "deleted"),
    [
        ("2h", 1),
        ("1d", 0),
        ("2w", 0),
        ("0s", 4),
        (ago(timedelta(minutes=15), ISO), 3),
        (lambda now: (now - timedelta(days=1)).date().isoformat(), 0),
    ],
)
def test_purge_takes_what_the_filters_take(
    tmp_path: Path,
    store: MetadataStore,
    now: datetime,
    before: str | Callable[[datetime], str],
    deleted: int,
) -> None:
    # Absolute times are placed around the test's own clock, as the events are.
    cutoff = before(now) if callable(before) else before
    result = run(tmp_path, "purge", "--before", cutoff)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Deleted {deleted} audit events")


def test_days_and_weeks_work_in_the_listing_filters_too(
    tmp_path: Path, store: MetadataStore
) -> None:
    assert len(json_lines(run(tmp_path, "--json", "--since", "1d"))) == 4
    assert parse_time("1d12h", NOW) == NOW - timedelta(hours=36)
    assert parse_time("2w", NOW) == NOW - timedelta(days=14)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["purge"], "--before"),
        (["purge", "--before", "last year"], "invalid time 'last year'"),
        (["purge", "--before", "2999-01-01"], "is in the future"),
        (["--json", "purge", "--before", "1h"], "do not apply to `purge`"),
    ],
)
def test_purge_bad_usage(
    tmp_path: Path, store: MetadataStore, args: list[str], message: str
) -> None:
    result = run(tmp_path, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(json_lines(run(tmp_path, "--json"))) == 4


def test_purge_uses_data_given_before_the_subcommand(tmp_path: Path, store: MetadataStore) -> None:
    result = CliRunner().invoke(app, ["audit", "--data", str(tmp_path), "purge", "--before", "2h"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Deleted 1 audit events")


def test_a_key_rotation_is_audited(tmp_path: Path, store: MetadataStore) -> None:
    rotated = CliRunner().invoke(app, ["keys", "rotate", "--data", str(tmp_path)])
    assert rotated.exit_code == 0, rotated.output
    (event,) = json_lines(run(tmp_path, "--json", "--event", "keys.rotate"))
    assert event["detail"]["kid"] == rotated.output.strip()
    assert event["detail"]["algorithm"] == "ES256"
    assert event["outcome"] == "success"
