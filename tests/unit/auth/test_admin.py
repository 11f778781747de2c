"""The admin service layer (auth/admin.py, adminrules.py, adminaudit.py) on a real store."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hatchway.audit.export import chunks, safe_cell
from hatchway.auth.admin import ADMIN_SCOPE, Actor, AdminService, NotApplicable
from hatchway.auth.adminaudit import AuditService, decode_cursor
from hatchway.auth.adminrules import ReadOnlyRule, RulesService
from hatchway.auth.credentials.pat import create_token, parse_token_scopes
from hatchway.auth.credentials.ratelimit import Limiter
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.identity.local import LocalAuthenticator
from hatchway.auth.policy import Policy, PolicyError, Rule, load_rules
from hatchway.auth.policy.source import database_rules
from hatchway.auth.selfservice import NotPermitted
from hatchway.metadata import AuditEvent, ConflictError, InvalidNameError, MetadataStore
from hatchway.metadata.auditquery import AuditFilter

CLIENT = ClientInfo("192.0.2.1", "test")
ROOT = Actor("root", admin=True, client=CLIENT)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    found = MetadataStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    found.accounts.create("root", password_hash="x", admin=True)
    yield found
    found.dispose()


@pytest.fixture
def admin(store: MetadataStore) -> AdminService:
    return AdminService(store, store.audit.record)


def events(store: MetadataStore, event: str) -> list[dict[str, object]]:
    return [r.detail for r in store.audit.list(event=event)]


def test_create_user_generates_a_password_once(store: MetadataStore, admin: AdminService) -> None:
    _account, password = admin.create_user(ROOT, "alice")
    assert password is not None
    assert len(password) >= 20
    local = LocalAuthenticator(store)
    assert local.authenticate("alice", password, CLIENT) is not None
    [detail] = events(store, "user.add")
    assert detail["by"] == "root"
    assert detail["via"] == "api"
    assert password not in json.dumps(detail)
    _, none = admin.create_user(ROOT, "bob", password="bob-Pw-1")
    assert none is None
    with pytest.raises(ConflictError):
        admin.create_user(ROOT, "bob", password="x")
    with pytest.raises(InvalidNameError):
        admin.create_user(ROOT, "bad name", password="x")
    with pytest.raises(ValueError, match="72"):
        admin.create_user(ROOT, "carol", password="x" * 73)


def test_disable_refuses_password_token_and_session(
    store: MetadataStore, admin: AdminService
) -> None:
    admin.create_user(ROOT, "alice", password="alice-Pw-1")
    _, secret = create_token(
        store, "alice", name="ci", scopes=["repository:a/*:pull"], lifetime=None
    )
    local = LocalAuthenticator(store, account_ttl=0)
    assert local.authenticate("alice", secret, CLIENT) is not None
    account = admin.set_disabled(ROOT, "alice", True)
    assert account.disabled
    assert local.authenticate("alice", "alice-Pw-1", CLIENT) is None
    assert local.authenticate("alice", secret, CLIENT) is None
    assert local.resolve("alice") is None
    assert events(store, "user.disable")
    assert not admin.set_disabled(ROOT, "alice", False).disabled
    assert local.authenticate("alice", "alice-Pw-1", CLIENT) is not None
    assert local.authenticate("alice", secret, CLIENT) is not None


def test_a_disabled_accounts_real_token_is_not_a_guess_at_its_password(
    store: MetadataStore, admin: AdminService
) -> None:
    admin.create_user(ROOT, "alice", password="alice-Pw-1")
    _, secret = create_token(store, "alice", name="ci", scopes=["repository:a:pull"], lifetime=None)
    admin.set_disabled(ROOT, "alice", True)
    local = LocalAuthenticator(store, account_ttl=0)
    limiter = Limiter(store.attempts)
    for _ in range(3):
        found = limiter.login(
            "alice",
            "192.0.2.1",
            lambda: local.authenticate("alice", secret, CLIENT),
            unguessable=True,
        )
        assert found is None
    keys = Limiter.keys("alice", "192.0.2.1")
    # No password was checked: nothing counts against the account (its address counts the
    # refusals, as for any login refused before a password check).
    assert store.attempts.get([keys.pair, keys.account]) == {}


def test_rails_self_and_last_admin(store: MetadataStore, admin: AdminService) -> None:
    with pytest.raises(ConflictError, match="your own"):
        admin.set_disabled(ROOT, "root", True)
    with pytest.raises(ConflictError, match="your own"):
        admin.delete_account(ROOT, "root")
    admin.create_user(ROOT, "ops", password="ops-Pw-1", admin=True)
    ops = Actor("ops", admin=True)
    admin.set_disabled(ops, "root", True)
    # root is disabled: ops is the last enabled admin and cannot be demoted by root either.
    with pytest.raises(ConflictError, match="last enabled admin"):
        admin.set_admin(Actor("someone", admin=True), "ops", False)


def test_only_admins_and_admin_scoped_tokens(store: MetadataStore, admin: AdminService) -> None:
    with pytest.raises(NotPermitted, match="admin accounts only"):
        admin.accounts(Actor("alice", admin=False))
    narrow = parse_token_scopes(["repository:*:*"])
    with pytest.raises(NotPermitted, match=ADMIN_SCOPE):
        admin.accounts(Actor("root", admin=True, token_scopes=narrow))
    wide = parse_token_scopes(["repository:*:*", ADMIN_SCOPE])
    assert admin.accounts(Actor("root", admin=True, token_scopes=wide))


def test_robots_and_their_tokens(store: MetadataStore, admin: AdminService) -> None:
    admin.create_robot(ROOT, "ci")
    with pytest.raises(NotApplicable):
        admin.reset_password(ROOT, "ci")
    record, secret = admin.create_robot_token(
        ROOT, "ci", name="deploy", scopes=["repository:team/*:pull"], expires="1d"
    )
    assert secret.startswith("hw_")
    assert record.expires_at is not None
    admin.create_user(ROOT, "alice", password="alice-Pw-1")
    with pytest.raises(NotApplicable, match="users make their own"):
        admin.create_robot_token(ROOT, "alice", name="x", scopes=["repository:a:pull"])
    assert [t.name for t in admin.tokens(ROOT, "ci")] == ["deploy"]
    admin.revoke_token(ROOT, "ci", "deploy")
    assert admin.tokens(ROOT, "ci") == []
    assert len(admin.tokens(ROOT, "ci", include_inactive=True)) == 1
    admin.delete_account(ROOT, "ci")
    assert events(store, "user.del")


def test_groups(store: MetadataStore, admin: AdminService) -> None:
    admin.create_user(ROOT, "alice", password="alice-Pw-1")
    admin.create_group(ROOT, "devs")
    assert admin.add_member(ROOT, "devs", "alice")
    assert not admin.add_member(ROOT, "devs", "alice")
    assert admin.group(ROOT, "devs").members == ("alice",)
    assert admin.remove_member(ROOT, "devs", "alice")
    admin.delete_group(ROOT, "devs")
    assert admin.groups(ROOT) == []


def test_rules_config_read_only_database_editable(store: MetadataStore) -> None:
    config = load_rules([{"name": "anonymous", "type": "registry", "action": "pull"}])
    rules = RulesService(store, store.audit.record, lambda: Policy(config).merged(_db_rules(store)))
    added = rules.add_rule(ROOT, {"group": "ci", "repository": "team/*", "action": "push"})
    listed = rules.rules(ROOT)
    assert [(r.id, r.source, r.read_only) for r in listed] == [
        ("config-1", "config", True),
        (added.id, "database", False),
    ]
    assert listed[1].position == 2
    with pytest.raises(ReadOnlyRule, match="config file"):
        rules.delete_rule(ROOT, "config-1")
    with pytest.raises(PolicyError, match="action"):
        rules.add_rule(ROOT, {"repository": "x", "action": "fly"})
    result = rules.check(ROOT, "bob", "pull", "any/thing")
    assert result.decision.allowed
    assert result.decision.rule == "rule 1"
    assert not result.known
    rules.delete_rule(ROOT, added.id)
    assert events(store, "access.rule.del")


def _db_rules(store: MetadataStore) -> list[Rule]:
    return database_rules(store.rules.list())


def test_audit_pages_and_exports(store: MetadataStore) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    store.audit.record_many(
        [
            AuditEvent("login", "success", "alice", time=start + timedelta(seconds=i))
            for i in range(25)
        ]
        + [AuditEvent("push", "success", "=cmd|' /C calc'!A0", time=start)]
    )
    service = AuditService(store, store.audit.record)
    seen: list[int] = []
    cursor = None
    while True:
        page, cursor = service.page(ROOT, AuditFilter(account="alice"), cursor, limit=10)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 25
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor("bm9wZQ")
    body = b"".join(service.export(ROOT, AuditFilter(event="push"), "csv")).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[1][4] == "'=cmd|' /C calc'!A0"
    lines = b"".join(chunks("jsonl", [store.audit.list(event="push")])).decode().splitlines()
    assert json.loads(lines[0])["account"] == "=cmd|' /C calc'!A0"
    assert safe_cell("-1") == "'-1"
    assert safe_cell("a=b") == "a=b"
    assert events(store, "audit.export")
