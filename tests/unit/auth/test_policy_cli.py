"""``hatchway access check``: the decision, the deciding rule, and the exit status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hatchway.cli.commands import access as access_cli

RULES: list[dict[str, Any]] = [
    {"name": "anonymous", "type": "registry", "action": "pull"},
    {"name": "alice", "repository": "alice/*", "action": ["pull", "push"]},
    {"group": "ops", "type": "registry", "action": "catalog"},
]


def run(tmp_path: Path, rules: object, *args: str) -> tuple[int, str]:
    """Run the command against a config file holding ``rules`` as its ``access:`` list."""
    path = tmp_path / "config.yml"
    document = {
        "version": 0.1,
        "storage": {"inmemory": {}},
        "access": rules,
        "database": {"dsn": f"sqlite:///{tmp_path / 'hatchway.db'}"},  # absent: no rules there
    }
    path.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(access_cli.app, ["check", *args, "--config", str(path)])
    return result.exit_code, result.output


CASES = [
    ("allow", RULES, ["alice", "push", "alice/app"], 0,
     "allow: rule 2 (name: alice, repository: alice/*, actions: pull,push)"),
    ("deny", RULES, ["alice", "push", "team/app"], 1, "deny: no rule allows push on team/app"),
    ("anonymous", RULES, ["anonymous", "pull", "team/app"], 0, "allow: rule 1 ("),
    ("anonymous-push", RULES, ["anonymous", "push", "alice/app"], 1, "deny: no rule allows"),
    ("star", RULES, ["alice", "*", "alice/app"], 1, "deny: no rule allows delete on alice/app"),
    ("group", RULES, ["bob", "catalog", "--group", "ops"], 0, "allow: rule 3 ("),
    ("group-repeat", RULES, ["bob", "*", "registry:catalog", "-g", "x", "-g", "ops"], 0,
     "allow: rule 3"),
    ("no-group", RULES, ["bob", "catalog"], 1, "deny: no rule grants the catalog"),
    ("admin", RULES, ["root", "delete", "x/y", "--admin"], 0, "allow: admin account"),
    ("defaults", None, ["bob", "*", "bob/app"], 0, "allow: default rule ("),
    ("defaults-other", None, ["bob", "pull", "alice/app"], 1, "deny: no rule allows pull"),
    ("bad-rules", [{"type": "registry", "action": "fly"}], ["bob", "pull", "a/b"], 2,
     "access rule 1: action 'fly'"),
    ("bad-action", RULES, ["bob", "fly", "a/b"], 2, "unknown action 'fly'"),
    ("bad-repository", RULES, ["bob", "pull", "Bad Name"], 2, "invalid repository name"),
    ("no-repository", RULES, ["bob", "pull"], 2, "give a repository"),
    ("catalog-with-repository", RULES, ["bob", "catalog", "a/b"], 2, "takes no repository"),
    ("anonymous-admin", RULES, ["anonymous", "pull", "a/b", "--admin"], 2, "anonymous has no"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "args", "code", "output"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_check(
    tmp_path: Path,
    rules: object,
    args: list[str],
    code: int,
    output: str,
) -> None:
    exit_code, text = run(tmp_path, rules, *args)
    assert output in text
    assert exit_code == code, text
