"""Metadata conformance: device authorization requests (``device_codes``) on SQLite and
PostgreSQL. Decisions and exchanges happen once even when many workers race; polls
faster than the interval slow the client down by 5 seconds each."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from hatchway.metadata import ConflictError, MetadataStore
from hatchway.metadata.devicecodes import APPROVED, DENIED, PENDING, USED, DeviceCodeStore
from hatchway.metadata.records import utcnow
from tests.metadata.factories import th


def make(codes: DeviceCodeStore, name: str = "a", *, seconds: float = 600) -> int:
    return codes.create(
        device_hash=th(f"device-{name}"),
        user_hash=th(f"user-{name}"),
        client_id="cli",
        scope="",
        expires_at=utcnow() + timedelta(seconds=seconds),
        interval=5,
        address="192.0.2.1",
        user_agent="tests",
    )


@pytest.fixture
def codes(store: MetadataStore) -> DeviceCodeStore:
    return DeviceCodeStore(store.db)


def test_create_and_find(codes: DeviceCodeStore) -> None:
    code_id = make(codes)
    found = codes.by_device(th("device-a"))
    assert found is not None
    assert found == codes.by_user(th("user-a"))
    assert (found.id, found.state, found.client_id, found.interval) == (code_id, PENDING, "cli", 5)
    assert (found.created_addr, found.user_agent, found.subject) == ("192.0.2.1", "tests", None)
    assert not found.expired()
    assert codes.by_device(th("nothing")) is None
    with pytest.raises(ConflictError):
        make(codes)  # the same hashes again


def test_decided_once_under_a_race(codes: DeviceCodeStore) -> None:
    code_id = make(codes)
    with ThreadPoolExecutor(8) as pool:
        won = list(
            pool.map(
                lambda i: codes.decide(
                    code_id, approve=i % 2 == 0, subject=f"u{i}", backend="local"
                ),
                range(16),
            )
        )
    assert won.count(True) == 1
    found = codes.by_device(th("device-a"))
    assert found is not None
    assert found.state in (APPROVED, DENIED)
    assert found.decided_at is not None


def test_redeemed_once_under_a_race(codes: DeviceCodeStore) -> None:
    code_id = make(codes)
    assert not codes.redeem(code_id)  # pending: nothing to redeem
    assert codes.decide(code_id, approve=True, subject="alice", backend="local")
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda _: codes.redeem(code_id), range(16)))
    assert won.count(True) == 1
    found = codes.by_device(th("device-a"))
    assert found is not None
    assert (found.state, found.subject, found.backend) == (USED, "alice", "local")


def test_expired_requests_are_neither_decided_nor_redeemed(codes: DeviceCodeStore) -> None:
    late = make(codes, "late", seconds=-1)
    assert not codes.decide(late, approve=True, subject="alice", backend="local")
    approved = make(codes, "b")
    assert codes.decide(approved, approve=True, subject="alice", backend="local")
    assert codes.purge(utcnow()) == 1  # the expired one only
    assert codes.by_device(th("device-late")) is None
    assert codes.by_device(th("device-b")) is not None


def test_polling_too_fast_slows_down(codes: DeviceCodeStore) -> None:
    code_id = make(codes)
    assert codes.poll(code_id, 1000.0)  # the first poll
    assert not codes.poll(code_id, 1004.0)  # 4 s later: slow down, interval now 10
    found = codes.by_device(th("device-a"))
    assert found is not None
    assert found.interval == 10
    assert not codes.poll(code_id, 1013.0)  # 9 s after the last: still too soon (15 now)
    assert codes.poll(code_id, 1028.0)  # 15 s: fine
    with ThreadPoolExecutor(8) as pool:
        timely = list(pool.map(lambda _: codes.poll(code_id, 2000.0), range(8)))
    assert timely.count(True) == 1  # racing polls: one counts, the rest slow down
