"""PolicySource: the config file's rules and the database's, swapped live, never broken.

Against a real config file and a real SQLite store; the change checks are driven by
``check()`` directly, except where the watcher thread itself is under test.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from hatchway.auth.access import Resource
from hatchway.auth.credentials.ratelimit import Limiter
from hatchway.auth.gate import BasicGate
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.policy import Policy, PolicyError, Rule, load_rules
from hatchway.auth.policy.source import PolicySource, provider
from hatchway.auth.principal import Principal
from hatchway.config import load as config_load
from hatchway.metadata import MetadataStore
from tests.support.aio import async_test

ALICE = Principal(subject="alice")
TEAM_APP = Resource("repository", "team/app")
OTHER_APP = Resource("repository", "other/app")


def allows(source: PolicySource, resource: Resource, action: str = "push") -> bool:
    return source().decide(ALICE, resource, action).allowed


def write_config(path: Path, access: object) -> None:
    path.write_text(yaml.safe_dump({"version": 0.1, "storage": {"inmemory": {}}, "access": access}))


def rule(repository: str, *actions: str) -> dict[str, Any]:
    return {"name": "alice", "repository": repository, "action": list(actions)}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    write_config(path, [rule("team/*", "pull", "push")])
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = MetadataStore(f"sqlite:///{tmp_path / 'hatchway.db'}")
    yield opened
    opened.dispose()


class Rereads:
    """The config file's rules, compiled as the server does it; counts the reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0

    def __call__(self) -> Sequence[Rule]:
        self.count += 1
        return load_rules(config_load.load(self.path).access)


def source_for(
    config_file: Path, store: MetadataStore | None = None, **kw: Any
) -> tuple[PolicySource, Rereads]:
    reread = Rereads(config_file)
    initial = load_rules(config_load.load(config_file).access)
    rules = store.rules if store is not None else None
    return PolicySource(initial, path=config_file, reread=reread, store=rules, **kw), reread


def bump_mtime(path: Path) -> None:
    """Make a change visible even on filesystems with coarse timestamps."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_config_file_change_is_picked_up(config_file: Path) -> None:
    source, reread = source_for(config_file)
    assert allows(source, TEAM_APP)
    assert not source.check()  # unchanged: not even read
    assert reread.count == 0
    write_config(config_file, [rule("other/*", "pull", "push")])
    bump_mtime(config_file)
    assert source.check()
    assert reread.count == 1
    assert not allows(source, TEAM_APP)
    assert allows(source, OTHER_APP)


def test_broken_config_file_is_refused_and_logged(
    config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, reread = source_for(config_file)
    before = source()
    broken = [
        "version: 0.1\naccess: [{name: alice, repository: 'x/*', action: [pull]\n",  # YAML
        yaml.safe_dump({"access": [{"nmae": "alice", "type": "registry", "action": "pull"}]}),
        yaml.safe_dump({"access": [rule("team/*", "fly")]}),
        yaml.safe_dump({"access": [rule("team/*", "pull")], "storage": {"bogus": {}}}),
    ]
    for text in broken:
        config_file.write_text(text)
        bump_mtime(config_file)
        with caplog.at_level(logging.ERROR, logger="hatchway.auth"):
            assert not source.check()
        assert source() is before
        assert allows(source, TEAM_APP)
    messages = [r.getMessage() for r in caplog.records if r.name == "hatchway.auth"]
    assert len(messages) == len(broken)  # once per change, not once per second
    assert all("was not reloaded, the rules in force stay" in m for m in messages)
    assert "not valid YAML" in messages[0]
    assert "unknown key 'nmae'" in messages[1]
    assert "action 'fly'" in messages[2]
    assert source.check() is False  # the same broken file is not read again ...
    assert reread.count == len(broken)
    write_config(config_file, [rule("other/*", "push")])  # ... a fixed one is
    bump_mtime(config_file)
    assert source.check()
    assert allows(source, OTHER_APP)


def test_forced_reload_reads_an_unchanged_looking_file(config_file: Path) -> None:
    """SIGHUP: re-read even when size and mtime look the same (a same-size edit, restored
    timestamps, a filesystem with coarse mtimes)."""
    source, reread = source_for(config_file)
    st = config_file.stat()
    write_config(config_file, [rule("zzzz/*", "pull", "push")])
    assert config_file.stat().st_size == st.st_size
    os.utime(config_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not source.check()
    assert allows(source, TEAM_APP)
    assert source.check(force=True)
    assert allows(source, Resource("repository", "zzzz/app"))
    assert reread.count == 1


def test_database_rules_follow_config_rules(config_file: Path, store: MetadataStore) -> None:
    store.rules.add(rule("db/*", "pull"))
    source, _ = source_for(config_file, store)
    labels = [r.label for r in source().rules]
    first = store.rules.list()[0].id
    assert labels == ["rule 1", f"database rule {first}"]
    assert allows(source, Resource("repository", "db/app"), "pull")
    assert not source.check()  # the revision did not move: the rules are not read
    added = store.rules.add(rule("other/*", "push"))
    assert source.check()
    assert allows(source, OTHER_APP)
    store.rules.delete(added.id)
    assert source.check()
    assert not allows(source, OTHER_APP)


def test_defaults_apply_only_without_any_rule(store: MetadataStore) -> None:
    source = PolicySource((), store=store.rules)
    assert source().decide(ALICE, Resource("repository", "alice/app"), "push").allowed
    store.rules.add(rule("team/*", "pull"))
    assert source.check()
    assert not source().decide(ALICE, Resource("repository", "alice/app"), "push").allowed


def test_broken_database_rule(
    config_file: Path, store: MetadataStore, caplog: pytest.LogCaptureFixture
) -> None:
    source, _ = source_for(config_file, store)
    before = source()
    bad = store.rules.add({"name": "alice", "repository": "team/*", "action": "fly"})
    with caplog.at_level(logging.ERROR, logger="hatchway.auth"):
        assert not source.check()
    assert source() is before
    assert f"access database rule {bad.id}: action 'fly'" in caplog.text
    assert "the rules in force stay" in caplog.text
    with pytest.raises(PolicyError, match=f"database rule {bad.id}"):
        source_for(config_file, store)  # a server does not start on it


def test_unreadable_database_keeps_rules(
    config_file: Path, store: MetadataStore, caplog: pytest.LogCaptureFixture
) -> None:
    source, _ = source_for(config_file, store)
    before = source()
    store.dispose()
    (config_file.parent / "hatchway.db").unlink()
    (config_file.parent / "hatchway.db").mkdir()  # no longer a database
    with caplog.at_level(logging.WARNING, logger="hatchway.auth"):
        assert not source.check()
        assert not source.check()
    assert source() is before
    assert caplog.text.count("cannot read the database") == 1  # said once, not every second


def test_watcher_sees_a_database_rule_within_a_second(
    config_file: Path, store: MetadataStore, tmp_path: Path
) -> None:
    source, _ = source_for(config_file, store)
    source.start()
    try:
        other = MetadataStore(f"sqlite:///{tmp_path / 'hatchway.db'}")  # as the CLI does
        try:
            other.rules.add(rule("other/*", "push"))
        finally:
            other.dispose()
        added = time.monotonic()
        while not allows(source, OTHER_APP) and time.monotonic() - added < 5:
            time.sleep(0.02)
        assert allows(source, OTHER_APP)
        assert time.monotonic() - added < 1.8
    finally:
        source.close()


def test_watcher_reload_rereads_at_once(config_file: Path) -> None:
    source, reread = source_for(config_file, interval=60.0)
    source.start()
    try:
        write_config(config_file, [rule("other/*", "push")])
        source.reload()
        deadline = time.monotonic() + 5
        while not allows(source, OTHER_APP) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert allows(source, OTHER_APP)
        assert reread.count == 1
    finally:
        source.close()


def test_provider_accepts_a_policy_or_a_callable() -> None:
    fixed = Policy(load_rules([rule("team/*", "pull")]))
    assert provider(fixed)() is fixed
    assert provider(lambda: fixed)() is fixed


class _Accept:
    backend = "test"

    def authenticate(self, username: str, secret: str, client: ClientInfo) -> Principal | None:
        return Principal(subject=username) if secret == "pw" else None

    def resolve(self, subject: str, token_id: str | None = None) -> Principal | None:
        return None


@async_test
async def test_basic_gate_asks_the_source_per_request(
    config_file: Path, store: MetadataStore
) -> None:
    from hatchway.auth.access import Access
    from hatchway.auth.challenge import Challenge

    source, _ = source_for(config_file)
    gate = BasicGate([_Accept()], source, Limiter(store.attempts))
    basic = "Basic " + base64.b64encode(b"alice:pw").decode()
    needed = [Access(OTHER_APP, frozenset({"push"}))]
    with pytest.raises(Challenge) as refused:
        await gate.check(basic, needed, "r", ClientInfo())
    assert refused.value.denied
    assert refused.value.account == "alice"
    write_config(config_file, [rule("other/*", "push")])
    bump_mtime(config_file)
    source.check()
    allowed = await gate.check(basic, needed, "r", ClientInfo())
    assert allowed.principal.subject == "alice"
    wrong = "Basic " + base64.b64encode(b"mallory:nope").decode()
    with pytest.raises(Challenge) as failed:
        await gate.check(wrong, needed, "r", ClientInfo())
    assert failed.value.failed
    assert failed.value.account == "mallory"
