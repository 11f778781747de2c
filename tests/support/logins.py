"""Clients for the login tests: ``hatchway login``/``logout`` and the docker CLI, run with
a private HOME and DOCKER_CONFIG, and a fake ``docker-credential-testhelper``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.server import HATCHWAY

DOCKER = shutil.which("docker")
VENV_BIN = str(Path(sys.executable).parent)

TEST_HELPER = r"""#!/usr/bin/env python3
# docker-credential-testhelper: the credential-helper protocol over a JSON file
# ($TESTHELPER_STORE); every call's argv and stdin are appended to $TESTHELPER_STORE.log.
import json, os, sys
path = os.environ["TESTHELPER_STORE"]
try:
    with open(path) as f:
        db = json.load(f)
except FileNotFoundError:
    db = {}
action = sys.argv[1] if len(sys.argv) > 1 else ""
data = sys.stdin.read() if action in ("store", "get", "erase") else ""
with open(path + ".log", "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "stdin": data}) + "\n")
if os.environ.get("TESTHELPER_FAIL"):
    print(os.environ["TESTHELPER_FAIL"])
    sys.exit(1)
if action == "store":
    c = json.loads(data)
    db[c["ServerURL"]] = {"Username": c["Username"], "Secret": c["Secret"]}
elif action in ("get", "erase"):
    url = data.strip()
    if url not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    if action == "get":
        print(json.dumps({"ServerURL": url, **db[url]}))
    else:
        del db[url]
elif action == "list":
    print(json.dumps({k: v["Username"] for k, v in db.items()}))
else:
    print("unknown action")
    sys.exit(1)
with open(path, "w") as f:
    json.dump(db, f)
"""


@dataclass
class Home:
    """A private HOME/DOCKER_CONFIG, a bin dir for fake helpers, the helper's store."""

    root: Path

    @property
    def docker_config(self) -> Path:
        return self.root / "docker"

    @property
    def config_file(self) -> Path:
        return self.docker_config / "config.json"

    @property
    def helper_file(self) -> Path:
        return self.root / "testhelper.json"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.root / 'bin'}:{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root),
            "DOCKER_CONFIG": str(self.docker_config),
            "TESTHELPER_STORE": str(self.helper_file),
            "LANG": "C.UTF-8",
            **extra,
        }

    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.config_file.read_text())
        return loaded

    def write_config(self, data: dict[str, Any]) -> None:
        self.docker_config.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(data))

    def install_helper(self) -> None:
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        path = bin_dir / "docker-credential-testhelper"
        path.write_text(TEST_HELPER)
        path.chmod(0o755)

    def helper_db(self) -> dict[str, dict[str, str]]:
        if not self.helper_file.exists():
            return {}
        loaded: dict[str, dict[str, str]] = json.loads(self.helper_file.read_text())
        return loaded

    def helper_calls(self) -> list[dict[str, Any]]:
        log = Path(str(self.helper_file) + ".log")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


def make_home(tmp: Path, name: str = "home") -> Home:
    root = tmp / name
    root.mkdir(parents=True)
    return Home(root)


def run_hatchway(
    home: Home, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """``hatchway ARGS`` in ``home``, stdin a pipe (never a TTY)."""
    return subprocess.run(
        [HATCHWAY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=home.env(**env),
        timeout=120,
        check=False,
    )


def hatchway_login(
    home: Home, server: str, user: str, password: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_hatchway(
        home, "login", "-u", user, "--password-stdin", *args, server, stdin=password + "\n", **env
    )


def docker_login(
    home: Home, server: str, user: str, password: str
) -> subprocess.CompletedProcess[str]:
    """The real docker CLI: with no daemon it logs in client side (docker 23+)."""
    assert DOCKER is not None
    return subprocess.run(
        [DOCKER, "login", "-u", user, "--password-stdin", server],
        input=password,
        capture_output=True,
        text=True,
        env=home.env(DOCKER_HOST="unix:///nonexistent/docker.sock"),
        timeout=120,
        check=False,
    )
