"""Metadata conformance, part 3: access rules kept in the database, and audit filters.

Every test runs on SQLite and on PostgreSQL (the ``dsn`` fixture in conftest.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from hatchway.metadata import AuditEvent, MetadataError, MetadataStore, NotFoundError
from tests.metadata.factories import NOW

ALICE = {"name": "alice", "repository": "team/*", "action": ["pull", "push"]}
BOB = {"name": "bob", "type": "registry", "action": "pull"}
CAROL = {"group": "ci-*", "repository": "ci/*", "action": "*"}


def order(store: MetadataStore) -> list[tuple[int, int]]:
    return [(r.id, r.position) for r in store.rules.list()]


def test_add_list_round_trip(store: MetadataStore) -> None:
    assert store.rules.list() == []
    assert store.rules.revision() == 0
    first = store.rules.add(ALICE, comment="team pushes")
    assert first.rule == ALICE
    assert first.position == 1
    assert first.comment == "team pushes"
    assert abs(first.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    second = store.rules.add(BOB)
    assert second.comment is None
    assert [r.rule for r in store.rules.list()] == [ALICE, BOB]
    assert store.rules.get(second.id) == second
    with pytest.raises(NotFoundError):
        store.rules.get(999)


def test_positions_stay_dense(store: MetadataStore) -> None:
    a = store.rules.add(ALICE).id
    b = store.rules.add(BOB).id
    c = store.rules.add(CAROL, position=1).id
    assert order(store) == [(c, 1), (a, 2), (b, 3)]
    assert store.rules.move(c, 3).position == 3
    assert order(store) == [(a, 1), (b, 2), (c, 3)]
    store.rules.move(b, 1)
    assert order(store) == [(b, 1), (a, 2), (c, 3)]
    deleted = store.rules.delete(a)
    assert deleted.rule == ALICE
    assert order(store) == [(b, 1), (c, 2)]
    with pytest.raises(MetadataError, match="out of range"):
        store.rules.add(ALICE, position=4)
    with pytest.raises(MetadataError, match="out of range"):
        store.rules.move(b, 3)
    with pytest.raises(NotFoundError):
        store.rules.move(a, 1)
    with pytest.raises(NotFoundError):
        store.rules.delete(a)


def test_revision_changes_with_every_change(store: MetadataStore) -> None:
    seen = {store.rules.revision()}
    a = store.rules.add(ALICE).id
    seen.add(store.rules.revision())
    b = store.rules.add(BOB).id
    seen.add(store.rules.revision())
    store.rules.move(b, 1)  # same ids, same count: only the revision tells
    seen.add(store.rules.revision())
    store.rules.delete(a)
    seen.add(store.rules.revision())
    assert len(seen) == 5
    before = store.rules.revision()
    with pytest.raises(NotFoundError):
        store.rules.delete(a)
    assert store.rules.revision() == before  # a failed change changes nothing


def test_ids_are_never_reused(store: MetadataStore) -> None:
    """Logs and the audit trail name rules by id: a new rule must not take an old one's."""
    store.rules.add(ALICE)
    last = store.rules.add(BOB).id
    store.rules.delete(last)
    assert store.rules.add(CAROL).id > last


def test_concurrent_adds_keep_order(dsn: str) -> None:
    stores = [MetadataStore(dsn) for _ in range(4)]
    try:
        threads = [
            threading.Thread(target=lambda s=s: [s.rules.add(BOB) for _ in range(5)])
            for s in stores
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        positions = [r.position for r in stores[0].rules.list()]
        assert positions == list(range(1, 21))
    finally:
        for s in stores:
            s.dispose()


def test_audit_filters(store: MetadataStore) -> None:
    old = NOW - timedelta(hours=2)
    store.audit.record_many(
        [
            AuditEvent("push", "success", "alice", repository="team/app", time=old),
            AuditEvent("pull", "success", "bob", repository="team/app"),
            AuditEvent("push", "denied", "bob", repository="team/app"),
            AuditEvent("pull", "success", "bob", repository="other/app"),
        ]
    )
    assert [e.event for e in store.audit.list(repository="team/app")] == ["push", "pull", "push"]
    assert [e.account for e in store.audit.list(outcome="denied")] == ["bob"]
    assert [e.account for e in store.audit.list(until=NOW - timedelta(hours=1))] == ["alice"]
    recent = store.audit.list(since=NOW - timedelta(hours=1), until=NOW + timedelta(hours=1))
    assert len(recent) == 3
    both = store.audit.list(account="bob", repository="team/app", event="pull")
    assert [(e.event, e.outcome) for e in both] == [("pull", "success")]
