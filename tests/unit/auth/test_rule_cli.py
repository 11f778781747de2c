"""``hatchway access rule add|list|del|move`` and ``access check`` with database rules,
through the real ``hatchway`` typer app against a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from hatchway.cli.main import app
from hatchway.metadata import MetadataStore
from tests.unit.auth.accounts_support import new_store

TEAM = '{name: alice, repository: "team/*", action: [pull, push]}'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = new_store(tmp_path)
    yield opened
    opened.dispose()


def run(data: Path, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--data", str(data)])


def test_add_list_del(tmp_path: Path, store: MetadataStore) -> None:
    added = run(tmp_path, "access", "rule", "add", TEAM, "--comment", "team pushes")
    assert added.exit_code == 0, added.output
    (record,) = store.rules.list()
    assert record.rule == {"name": "alice", "repository": "team/*", "action": ["pull", "push"]}
    assert record.comment == "team pushes"
    assert f"Added database rule {record.id} (name: alice, repository: team/*" in added.output
    json_rule = '{"group": "ops", "type": "registry", "action": "catalog"}'
    assert run(tmp_path, "access", "rule", "add", json_rule, "--position", "1").exit_code == 0
    listed = run(tmp_path, "access", "rule", "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split() == ["ID", "POSITION", "RULE", "CREATED", "COMMENT"]
    assert "{group: ops, type: registry, action: catalog}" in lines[1]
    assert "{name: alice, repository: team/*, action: [pull, push]}" in lines[2]
    assert lines[2].endswith("team pushes")
    shown = lines[2][lines[2].index("{") : lines[2].rindex("}") + 1]
    assert yaml.safe_load(shown) == record.rule  # what list shows, add takes back
    moved = run(tmp_path, "access", "rule", "move", str(record.id), "1")
    assert moved.exit_code == 0, moved.output
    assert store.rules.list()[0].id == record.id
    deleted = run(tmp_path, "access", "rule", "del", str(record.id))
    assert deleted.exit_code == 0
    assert f"Deleted access rule {record.id}" in deleted.output
    assert [r.rule["group"] for r in store.rules.list()] == ["ops"]
    assert run(tmp_path, "access", "rule", "del", str(record.id)).exit_code == 1
    events = [e.event for e in store.audit.list()]
    assert events == ["access.rule.del", "access.rule.move", "access.rule.add", "access.rule.add"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('{nmae: alice, repository: "team/*", action: pull}', "unknown key 'nmae'"),
        ('{name: alice, repository: "team/*", action: fly}', "action 'fly' is not one of"),
        ("{name: alice, action: pull}", "missing 'type'"),
        ("[name, alice]", "must be one mapping"),
        ("{name: alice", "not valid YAML or JSON"),
        ('{name: alice, repository: "Team App", action: pull}', "is not a valid glob"),
    ],
)
def test_bad_rules_are_refused(
    tmp_path: Path, store: MetadataStore, rule: str, message: str
) -> None:
    result = run(tmp_path, "access", "rule", "add", rule)
    assert result.exit_code == 2
    assert message in result.output
    assert store.rules.list() == []


def test_position_out_of_range(tmp_path: Path, store: MetadataStore) -> None:
    result = run(tmp_path, "access", "rule", "add", TEAM, "--position", "3")
    assert result.exit_code == 1
    assert "out of range" in result.output


def test_empty_list(tmp_path: Path, store: MetadataStore) -> None:
    result = run(tmp_path, "access", "rule", "list")
    assert result.exit_code == 0
    assert "No access rules in the database." in result.output


def test_check_sees_database_rules_after_config_rules(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {"version": 0.1, "access": [{"name": "bob", "type": "registry", "action": "pull"}]}
        )
    )

    def check(*args: str) -> Result:
        return run(tmp_path, "access", "check", *args, "--config", str(config))

    assert check("alice", "push", "team/app").exit_code == 1
    assert run(tmp_path, "access", "rule", "add", TEAM).exit_code == 0
    allowed = check("alice", "push", "team/app")
    assert allowed.exit_code == 0
    assert "allow: database rule 1 (name: alice" in allowed.output
    assert "allow: rule 1 (name: bob" in check("bob", "pull", "team/app").output
    # Any rule at all, config or database, ends the no-rules default (own namespace).
    assert check("alice", "push", "alice/app").exit_code == 1
