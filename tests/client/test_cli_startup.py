"""Client commands start fast because they never import the server: each command runs in a
fresh interpreter and the modules it loaded are checked. A structural test, not a timed one
(``bench/startup.py`` measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hatchway.cli.main import COMMANDS
from tests.support.imagefiles import hatchway

# What a client command must never load: the server's layers, and the libraries only the
# server needs (pydantic comes with the configuration model, and with typer >= 0.29).
SERVER_MODULES = (
    "aiohttp",
    "sqlalchemy",
    "psycopg",
    "pydantic",
    "yaml",
    "jwt",
    "hatchway.http",
    "hatchway.registry",
    "hatchway.metadata",
    "hatchway.auth",
    "hatchway.audit",
    "hatchway.storage",
    "hatchway.config",
)

_RUN = """
import json, sys
from hatchway.cli.main import main
out, sys.argv = sys.argv[1], ["hatchway", *sys.argv[2:]]
try:
    main()
except SystemExit:
    pass
with open(out, "w") as f:
    json.dump(sorted(sys.modules), f)
"""

UNREACHABLE = "127.0.0.1:9"  # discard: nothing listens there

CLIENT_RUNS = [
    ["--help"],
    *([name, "--help"] for name in ("login", "logout", "push", "pull", "tags", "inspect")),
    ["delete", "--help"],
    ["version"],
    ["tags", f"{UNREACHABLE}/a/b"],
    ["inspect", f"{UNREACHABLE}/a/b:1"],
    ["delete", f"{UNREACHABLE}/a/b:1"],
    ["pull", f"{UNREACHABLE}/a/b:1", "out.tar"],
    ["push", "missing-layout", f"{UNREACHABLE}/a/b:1"],
    ["login", "-u", "alice", "--password-stdin", UNREACHABLE],
    ["logout", UNREACHABLE],
    ["token", "list", "--registry", UNREACHABLE],
    ["token", "create", "--registry", UNREACHABLE, "-n", "x", "-s", "repository:a:pull"],
    ["token", "revoke", "x", "--registry", UNREACHABLE],
]


def modules_loaded(tmp_path: Path, args: list[str]) -> list[str]:
    out = tmp_path / "modules.json"
    subprocess.run(
        [sys.executable, "-c", _RUN, str(out), *args],
        input="secret\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "DOCKER_CONFIG": str(tmp_path / "docker"),
        },
        check=False,
    )
    loaded: list[str] = json.loads(out.read_text())
    return loaded


def server_modules(loaded: list[str]) -> list[str]:
    return [m for m in loaded if any(m == s or m.startswith(s + ".") for s in SERVER_MODULES)]


@pytest.mark.parametrize("args", CLIENT_RUNS, ids=" ".join)
def test_a_client_command_imports_no_server_module(tmp_path: Path, args: list[str]) -> None:
    loaded = modules_loaded(tmp_path, args)
    assert "hatchway.cli.main" in loaded
    assert server_modules(loaded) == []


def test_a_client_command_without_a_terminal_does_not_load_rich(tmp_path: Path) -> None:
    loaded = modules_loaded(tmp_path, ["pull", f"{UNREACHABLE}/a/b:1", "out.tar"])
    assert "httpx" in loaded  # it did run
    assert [m for m in loaded if m == "rich" or m.startswith("rich.")] == []


def test_a_server_command_still_loads_the_server(tmp_path: Path) -> None:
    loaded = modules_loaded(tmp_path, ["gc", "--data", str(tmp_path / "data"), "--dry-run"])
    assert "hatchway.registry" in server_modules(loaded)


def test_help_lists_every_command_with_its_help_line() -> None:
    out = hatchway("--help").stdout
    for command in COMMANDS:
        assert command.name is not None
        assert command.name in out
        assert " ".join((command.help or "").split()[:4]) in " ".join(out.split())


def test_each_help_line_is_what_the_command_itself_says() -> None:
    """The line registered in main.py starts the real command's own help, so they cannot
    drift apart (a group's help is the registered line itself)."""
    for command in COMMANDS:
        real = command.load()
        registered = " ".join((command.help or "").split()).rstrip(".")
        assert " ".join((real.help or "").split()).startswith(registered), command.name


def test_a_lazy_command_runs_and_shows_its_own_help() -> None:
    assert hatchway("version").stdout.strip()
    out = hatchway("user", "--help").stdout
    assert "Accounts in the built-in store." in out
    assert "add" in out
    wrong = hatchway("tgas", check=False)
    assert wrong.returncode == 2
    assert "Did you mean 'tags'" in wrong.stderr
