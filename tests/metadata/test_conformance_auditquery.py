"""Audit pages by keyset cursor and the disabled state, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hatchway.metadata import AuditEvent, MetadataStore
from hatchway.metadata.auditquery import AuditFilter, batches, page


def test_pages_neither_repeat_nor_skip_with_equal_times(store: MetadataStore) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    # Pairs of events share a time: the cursor must break the tie by id.
    store.audit.record_many(
        [
            AuditEvent("login", "success", f"u{i}", time=start + timedelta(seconds=i // 2))
            for i in range(11)
        ]
        + [AuditEvent("push", "failure", "other", time=start)]
    )
    where = AuditFilter(event="login", since=start)
    seen: list[int] = []
    after = None
    while True:
        rows, after = page(store.db, where, after, 3)
        seen += [r.id for r in rows]
        if after is None:
            break
    assert len(seen) == len(set(seen)) == 11
    times = [r.time for rows in batches(store.db, where, 4) for r in rows]
    assert len(times) == 11
    assert times == sorted(times, reverse=True)
    assert page(store.db, AuditFilter(outcome="failure"), None, 10)[0][0].account == "other"
    assert page(store.db, AuditFilter(until=start - timedelta(seconds=1)), None, 10) == ([], None)


def test_disabled_state(store: MetadataStore) -> None:
    store.accounts.create("alice", password_hash="x")
    assert not store.accounts.require("alice").disabled
    session = store.refresh_tokens.create(
        "alice", backend="local", client_id="docker", token_hash="a" * 64
    )
    assert store.accounts.set_disabled("alice", True)
    # Disabling ends the account's sessions for good.
    found = store.refresh_tokens.get(session.id)
    assert found is not None
    assert found.revoked_at is not None
    assert not store.accounts.set_disabled("alice", True)  # already
    assert store.accounts.require("alice").disabled_at is not None
    assert store.accounts.set_disabled("alice", False)
    assert not store.accounts.require("alice").disabled
