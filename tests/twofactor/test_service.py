"""``TwoFactorService`` over a real SQLite store (what the web UI will call): recovery codes
are single-use, codes are checked within one step either way and once, and the audit
trail never holds a secret or a code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from hatchway.auth.credentials.ratelimit import Limiter, Throttled
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import Kind, Principal
from hatchway.auth.selfservice import Caller
from hatchway.auth.twofactor import (
    HAS_2FA,
    MUST_ENROL,
    NotApplicable,
    NotPermitted,
    TwoFactorService,
    WrongCode,
)
from hatchway.metadata import AuditEvent, MetadataStore

CLIENT = ClientInfo("192.0.2.7", "test")
NOW = 1_800_000_015.0  # 15 s into a step


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = MetadataStore(f"sqlite:///{tmp_path / 'db' / 'hatchway.db'}")
    opened.accounts.create("alice", password_hash="$2b$04$" + "a" * 53)
    yield opened
    opened.dispose()


def service(store: MetadataStore, events: list[AuditEvent]) -> TwoFactorService:
    return TwoFactorService(
        store,
        Limiter(store.attempts, clock=lambda: NOW),
        events.append,
        check_password=lambda name, password, client: password == "pw",
        clock=lambda: NOW,
    )


ALICE = Caller(Principal("alice"), "local")


def enrolled(tf: TwoFactorService) -> tuple[pyotp.TOTP, list[str]]:
    made = tf.start(ALICE, CLIENT)
    totp = pyotp.TOTP(made.secret)
    return totp, tf.confirm(ALICE, totp.at(NOW), CLIENT)


def test_recovery_codes_once_and_audit_without_secrets(store: MetadataStore) -> None:
    events: list[AuditEvent] = []
    tf = service(store, events)
    totp, codes = enrolled(tf)
    assert tf.verify("alice", codes[3], CLIENT) == "recovery"
    with pytest.raises(WrongCode):
        tf.verify("alice", codes[3], CLIENT)
    assert tf.status(ALICE.principal).recovery_codes_left == 9
    assert tf.verify("alice", totp.at(NOW + 30), CLIENT) == "totp"
    with pytest.raises(WrongCode):
        tf.verify("alice", totp.at(NOW + 30), CLIENT)  # replay
    with pytest.raises(WrongCode):
        tf.verify("alice", totp.at(NOW), CLIENT)  # an earlier step after a later one
    found = store.twofactor.get("alice")
    assert found is not None
    text = repr(events)
    for secret in (found.secret, *codes, totp.at(NOW), totp.at(NOW + 30)):
        assert secret not in text
    assert [e.event for e in events if e.outcome == "success"] == [
        "twofactor.enrol",
        "twofactor.confirm",
        "twofactor.recovery",
    ]


def test_rule_and_required(store: MetadataStore) -> None:
    tf = service(store, [])
    alice = Principal("alice")
    assert tf.password_refusal(alice) is None
    tf.required = "all"
    assert tf.password_refusal(alice) == MUST_ENROL
    assert tf.password_refusal(Principal("alice", token_id="7")) is None
    assert tf.password_refusal(Principal("bot", kind=Kind.ROBOT)) is None
    tf.required = "admins"
    assert tf.password_refusal(alice) is None
    assert tf.password_refusal(Principal("alice", admin=True)) == MUST_ENROL
    enrolled(tf)
    assert tf.password_refusal(alice) == HAS_2FA


def test_tokens_robots_and_wrong_codes(store: MetadataStore) -> None:
    tf = service(store, [])
    with pytest.raises(NotPermitted):
        tf.start(Caller(Principal("alice", token_id="3"), "local"), CLIENT)
    with pytest.raises(NotApplicable):
        tf.start(Caller(Principal("bot", kind=Kind.ROBOT), "local"), CLIENT)
    with pytest.raises(NotApplicable):
        tf.start(Caller(Principal("ghost"), "htpasswd"), CLIENT)
    totp, _ = enrolled(tf)
    with pytest.raises(WrongCode):
        tf.disable(ALICE, "not-pw", totp.at(NOW + 30), CLIENT)
    for _ in range(5):
        with pytest.raises(WrongCode):
            tf.verify("alice", "999999" if totp.at(NOW) != "999999" else "999998", CLIENT)
    with pytest.raises(Throttled):
        tf.verify("alice", totp.at(NOW + 30), CLIENT)
