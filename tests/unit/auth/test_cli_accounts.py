"""``hatchway user|group|token`` through typer's CliRunner, against a real SQLite store."""

from __future__ import annotations

import getpass
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.identity.local import LocalAuthenticator
from hatchway.auth.principal import Kind
from hatchway.cli.commands import _accounts, group, token, user
from hatchway.metadata import MetadataStore
from tests.unit.auth.accounts_support import fast_bcrypt, new_store, verifier


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fast_bcrypt(monkeypatch)
    return tmp_path


@pytest.fixture
def store(data: Path) -> Iterator[MetadataStore]:
    opened = new_store(data)
    yield opened
    opened.dispose()


def run(app: typer.Typer, data: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, [*args, "--data", str(data)], input=stdin)


def login(store: MetadataStore, name: str, secret: str) -> bool:
    auth = LocalAuthenticator(store, verifier=verifier())
    return auth.authenticate(name, secret, ClientInfo("203.0.113.5")) is not None


def test_user_add_from_stdin(data: Path, store: MetadataStore) -> None:
    result = run(user.app, data, "add", "alice", "--admin", "--password-stdin", stdin="s3 cret\n")
    assert result.exit_code == 0, result.output
    assert "Added user alice (admin)" in result.output
    assert login(store, "alice", "s3 cret")
    assert store.accounts.require("alice").admin
    result = run(user.app, data, "add", "bob", "--password-stdin", stdin="b0b\r\nignored\n")
    assert result.exit_code == 0
    assert login(store, "bob", "b0b")
    assert stat.S_IMODE((data / "hatchway.db").stat().st_mode) == 0o600


def test_secrets_never_from_argv(data: Path, store: MetadataStore) -> None:
    assert run(user.app, data, "add", "bob", "hunter2").exit_code == 2
    assert run(user.app, data, "add", "bob", "--password", "hunter2").exit_code == 2
    assert run(user.app, data, "passwd", "bob", "hunter2").exit_code == 2
    result = run(user.app, data, "add", "bob")  # no terminal, no --password-stdin
    assert result.exit_code == 1
    assert "--password-stdin" in result.output
    assert store.accounts.get("bob") is None
    assert run(user.app, data, "add", "bob", "--password-stdin", stdin="\n").exit_code == 1


def test_prompt_twice(data: Path, store: MetadataStore, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["first", "second", "same", "same"])
    monkeypatch.setattr(_accounts, "interactive", lambda: True)
    monkeypatch.setattr(getpass, "getpass", lambda prompt: next(answers))
    result = run(user.app, data, "add", "alice")
    assert result.exit_code == 1
    assert "do not match" in result.output
    assert run(user.app, data, "add", "alice").exit_code == 0
    assert login(store, "alice", "same")


def test_passwd_del_list_and_admin(data: Path, store: MetadataStore) -> None:
    run(user.app, data, "add", "alice", "--password-stdin", stdin="old\n")
    assert run(user.app, data, "passwd", "nobody", "--password-stdin", stdin="x\n").exit_code == 1
    assert run(user.app, data, "passwd", "alice", "--password-stdin", stdin="new\n").exit_code == 0
    assert login(store, "alice", "new")
    assert not login(store, "alice", "old")
    assert run(user.app, data, "set-admin", "alice").exit_code == 0
    assert store.accounts.require("alice").admin
    assert run(user.app, data, "set-admin", "alice", "--off").exit_code == 0
    assert not store.accounts.require("alice").admin
    assert run(user.app, data, "add-robot", "ci-bot").exit_code == 0
    listing = run(user.app, data, "list").output.splitlines()
    assert listing[0].split() == ["NAME", "KIND", "ADMIN", "GROUPS", "CREATED", "STATE"]
    assert listing[1].split()[:4] == ["alice", "user", "no", "-"]
    assert listing[2].split()[:4] == ["ci-bot", "robot", "no", "-"]
    assert listing[1].split()[-1] == "active"
    assert run(user.app, data, "disable", "alice").exit_code == 0
    assert store.accounts.require("alice").disabled
    assert not login(store, "alice", "new")
    assert run(user.app, data, "list").output.splitlines()[1].split()[-1] == "disabled"
    assert run(user.app, data, "enable", "alice").exit_code == 0
    assert login(store, "alice", "new")
    assert run(user.app, data, "disable", "nobody").exit_code == 1
    assert store.audit.list(event="user.disable")[0].detail["via"] == "cli"
    result = run(user.app, data, "passwd", "ci-bot", "--password-stdin", stdin="x\n")
    assert result.exit_code == 1
    assert "robot" in result.output
    assert run(user.app, data, "del", "alice").exit_code == 0
    result = run(user.app, data, "del", "alice")
    assert result.exit_code == 1
    assert "no account named 'alice'" in result.output
    assert run(user.app, data, "add", "bad name", "--password-stdin", stdin="x\n").exit_code == 1


def test_groups(data: Path, store: MetadataStore) -> None:
    run(user.app, data, "add", "alice", "--password-stdin", stdin="pw\n")
    assert run(group.app, data, "add", "devs").exit_code == 0
    assert run(group.app, data, "add", "devs").exit_code == 1
    assert "is now a member" in run(group.app, data, "member", "add", "devs", "alice").output
    assert "already" in run(group.app, data, "member", "add", "devs", "alice").output
    assert run(group.app, data, "member", "add", "devs", "nobody").exit_code == 1
    assert store.accounts.require("alice").groups == {"devs"}
    assert run(group.app, data, "list").output.splitlines()[1].split()[:2] == ["devs", "alice"]
    assert "no longer" in run(group.app, data, "member", "remove", "devs", "alice").output
    assert "is not" in run(group.app, data, "member", "remove", "devs", "alice").output
    assert run(group.app, data, "del", "devs").exit_code == 0
    assert store.accounts.list_groups() == []


def test_tokens(data: Path, store: MetadataStore) -> None:
    run(user.app, data, "add", "alice", "--password-stdin", stdin="pw\n")
    run(user.app, data, "add-robot", "bot")
    args = ["create", "--user", "alice", "--name", "ci", "--expires", "30d"]
    result = run(token.app, data, *args, "--scope", "repository:alice/*:pull,push")
    assert result.exit_code == 0, result.output
    secret = result.stdout.splitlines()[-1]
    assert secret.startswith("hw_")
    assert len(secret) == 46
    assert login(store, "alice", secret)
    result = run(token.app, data, "create", "-u", "bot", "-n", "deploy", "-s", "repository:x:pull")
    robot_secret = result.stdout.splitlines()[-1]
    principal = LocalAuthenticator(store).authenticate("bot", robot_secret, ClientInfo())
    assert principal is not None
    assert principal.kind is Kind.ROBOT
    lines = run(token.app, data, "list", "--user", "alice").output.splitlines()
    assert lines[0].split() == ["ID", "NAME", "USER", "SCOPES", "EXPIRES", "LAST", "USED", "FROM"]
    assert lines[1].split()[:4] == ["1", "ci", "alice", "repository:alice/*:pull,push"]
    assert lines[1].split()[-1] == "203.0.113.5"
    assert len(lines) == 2
    assert len(run(token.app, data, "list").output.splitlines()) == 3
    assert run(token.app, data, "list", "--user", "nobody").exit_code == 1
    assert run(token.app, data, "revoke", "ci", "--user", "alice").exit_code == 0
    assert not login(store, "alice", secret)
    assert run(token.app, data, "revoke", "2", "--user", "alice").exit_code == 1  # bot's token
    assert run(token.app, data, "revoke", "2", "--user", "bot").exit_code == 0
    full = run(token.app, data, "list", "--all").output.splitlines()
    assert [line.split()[-1] for line in full[1:]] == ["revoked", "revoked"]


def test_token_errors(data: Path, store: MetadataStore) -> None:
    run(user.app, data, "add", "alice", "--password-stdin", stdin="pw\n")
    base = ["create", "--user", "alice", "--name", "ci"]
    result = run(token.app, data, *base, "-s", "repository:a:pull", "--expires", "soon")
    assert result.exit_code == 2
    assert "invalid expiry" in result.output
    result = run(token.app, data, *base, "-s", "repository:a:pul")
    assert result.exit_code == 1
    assert "actions must be" in result.output
    assert run(token.app, data, *base).exit_code == 2  # --scope is required
    missing = run(token.app, data, "create", "-u", "nobody", "-n", "x", "-s", "repository:a:pull")
    assert missing.exit_code == 1
    assert store.tokens.list(include_inactive=True) == []


def test_audit_without_secrets(data: Path, store: MetadataStore) -> None:
    run(user.app, data, "add", "alice", "--password-stdin", stdin="pa55word-xyz\n")
    result = run(token.app, data, "create", "-u", "alice", "-n", "ci", "-s", "repository:a:pull")
    secret = result.stdout.splitlines()[-1]
    events = {e.event: e for e in store.audit.list()}
    assert set(events) == {"user.add", "token.create"}
    assert events["token.create"].account == "alice"
    assert events["token.create"].detail["scopes"] == ["repository:a:pull"]
    store.dispose()
    raw = b"".join(p.read_bytes() for p in data.glob("hatchway.db*"))
    assert b"pa55word-xyz" not in raw
    assert secret.encode() not in raw


def test_config_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast_bcrypt(monkeypatch)
    root = tmp_path / "root"
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n")
    result = CliRunner().invoke(user.app, ["add-robot", "bot", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert (root / "hatchway.db").exists()
