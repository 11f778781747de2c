"""The AuditSink's two paths on a real SQLite store: changes committed before their future is
done (together when they queue up), and repeated failures folded into one counting row."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hatchway.audit.sink import AuditSink, AuditWriteError, coalesce
from hatchway.metadata import AuditEvent, MetadataStore
from hatchway.metadata.records import utcnow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = MetadataStore(f"sqlite:///{tmp_path / 'hatchway.db'}")
    yield opened
    opened.dispose()


def reopen(tmp_path: Path) -> MetadataStore:
    """A second connection, as ``hatchway audit`` would open: sees only what is committed."""
    return MetadataStore(f"sqlite:///{tmp_path / 'hatchway.db'}")


def push(n: int) -> AuditEvent:
    return AuditEvent("push", "success", "alice", repository="alice/app", detail={"n": n})


class HeldWriter:
    """The real store, but the first write waits until released (to queue changes up)."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store
        self.calls: list[list[str]] = []
        self.inside = threading.Event()
        self.release = threading.Event()

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        self.calls.append([e.event + str(e.detail.get("n", "")) for e in events])
        if len(self.calls) == 1:
            self.inside.set()
            self.release.wait(timeout=10)
        self.store.audit.record_many(events)

    def write_batch(
        self, events: Sequence[AuditEvent], updates: Mapping[int, dict[str, Any]] | None = None
    ) -> list[int]:
        return self.store.audit.write_batch(events, updates)


class BrokenWriter:
    def record_many(self, events: Sequence[AuditEvent]) -> None:
        raise OSError("disk full")

    def write_batch(
        self, events: Sequence[AuditEvent], updates: Mapping[int, dict[str, Any]] | None = None
    ) -> list[int]:
        raise OSError("disk full")


def test_a_change_is_committed_when_its_future_is_done(
    tmp_path: Path, store: MetadataStore
) -> None:
    sink = AuditSink(store.audit, interval=3600)  # the batched path never runs by itself
    try:
        sink.commit(push(1)).result(timeout=10)
        other = reopen(tmp_path)
        try:
            assert [(e.event, e.detail) for e in other.audit.list()] == [("push", {"n": 1})]
        finally:
            other.dispose()
    finally:
        sink.close()


def test_changes_queued_during_a_write_are_committed_together(store: MetadataStore) -> None:
    writer = HeldWriter(store)
    sink = AuditSink(writer, interval=3600)
    try:
        first = sink.commit(push(1))
        assert writer.inside.wait(timeout=10)
        waiting = [sink.commit(push(n)) for n in (2, 3, 4)]
        assert not any(f.done() for f in [first, *waiting])
        writer.release.set()
        for future in [first, *waiting]:
            future.result(timeout=10)
        assert writer.calls == [["push1"], ["push2", "push3", "push4"]]
        assert len(store.audit.list(event="push")) == 4
    finally:
        writer.release.set()
        sink.close()


def test_a_change_that_cannot_be_written_fails_its_future() -> None:
    sink = AuditSink(BrokenWriter(), interval=3600)
    try:
        with pytest.raises(AuditWriteError, match=r"could not be written \(OSError\)"):
            sink.commit(push(1)).result(timeout=10)
    finally:
        sink.close()


def test_without_a_database_a_change_is_logged_before_commit_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = AuditSink(None, interval=3600)
    try:
        with caplog.at_level(logging.INFO, logger="hatchway.audit"):
            future = sink.commit(push(1))
            assert future.done()
            assert future.exception() is None
        assert [json.loads(r.getMessage())["event"] for r in caplog.records] == ["push"]
    finally:
        sink.close()


def test_a_change_after_close_is_still_written(store: MetadataStore) -> None:
    sink = AuditSink(store.audit, interval=3600)
    sink.close()
    sink.commit(push(1)).result(timeout=10)
    assert len(store.audit.list()) == 1


def failed_login(address: str = "198.51.100.7", agent: str = "curl", **kw: Any) -> AuditEvent:
    return AuditEvent("login", kw.pop("outcome", "failure"), "admin", address, agent, **kw)


def test_a_login_flood_is_one_row_per_window_that_keeps_counting(store: MetadataStore) -> None:
    sink = AuditSink(store.audit, interval=3600, window=60)
    start = utcnow()
    try:
        for i in range(3):  # a changing user agent does not make a new row
            sink.record(failed_login(agent=f"bot/{i}", time=start + timedelta(seconds=i)))
        sink.flush()
        for i in range(3, 40):
            sink.record(failed_login(time=start + timedelta(seconds=i)))
        sink.record(failed_login(outcome="throttled", time=start + timedelta(seconds=40)))
        sink.record(failed_login(address="203.0.113.5", time=start + timedelta(seconds=40)))
        sink.flush()
        for i in range(41, 50):
            sink.record(failed_login(outcome="throttled", time=start + timedelta(seconds=i)))
        sink.flush()
        rows = store.audit.list(account="admin")
        summary = sorted((r.outcome, r.client_addr, r.detail.get("count", 1)) for r in rows)
        assert summary == [
            ("failure", "198.51.100.7", 40),
            ("failure", "203.0.113.5", 1),
            ("throttled", "198.51.100.7", 10),
        ]
        flood = next(r for r in rows if r.detail.get("count") == 40)
        assert flood.time == start
        assert flood.user_agent == "bot/0"
        assert flood.detail["last"] == (start + timedelta(seconds=39)).isoformat().replace(
            "+00:00", "Z"
        )

        # A minute after the row opened, the next failure starts a new row.
        sink.record(failed_login(time=start + timedelta(seconds=61)))
        sink.record(failed_login(time=start + timedelta(seconds=62)))
        sink.flush()
        again = store.audit.list(account="admin", outcome="failure", since=start)
        assert sorted(r.detail.get("count", 1) for r in again) == [1, 2, 40]
    finally:
        sink.close()


def test_coalesce_folds_failures_but_not_changes_or_denials() -> None:
    push_ = push(1)
    denied = AuditEvent("push", "denied", "bob", "10.0.0.2", repository="alice/app")
    bad = AuditEvent("push", "failure", None, "10.0.0.3", "a", detail={"reason": "bad token"})
    other = AuditEvent("push", "failure", None, "10.0.0.3", "b", detail={"reason": "expired"})
    folded = coalesce([push_, push_, denied, denied, bad, other, bad, bad])
    outcomes = [str(e.outcome) for e in folded]
    assert outcomes == ["success", "success", "denied", "denied", "failure", "failure"]
    assert folded[4].detail["count"] == 3
    assert folded[4].detail["reason"] == "bad token"
    assert "count" not in folded[5].detail
