"""Run the real ``docker-credential-hatchway`` executable with a private HOME."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN_DIR = Path(sys.executable).parent
HELPER = str(BIN_DIR / "docker-credential-hatchway")
NOT_FOUND = b"credentials not found in native keychain\n"


def helper_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: HOME, XDG_CONFIG_HOME and DOCKER_CONFIG under ``home``, PATH
    with the venv's bin first (so clients find the helper), the file backend."""
    return {
        "PATH": f"{BIN_DIR}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "DOCKER_CONFIG": str(home / ".docker"),
        "LANG": "C.UTF-8",
        "HATCHWAY_CREDENTIALS_BACKEND": "file",
        **extra,
    }


class Helper:
    """``docker-credential-hatchway`` with a private home and environment."""

    def __init__(self, home: Path, **env: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.env = helper_env(home, **env)

    @property
    def store_dir(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "hatchway"

    @property
    def credentials_file(self) -> Path:
        return self.store_dir / "credentials.enc"

    @property
    def keyfile(self) -> Path:
        return self.store_dir / "credentials.key"

    def run(
        self, *args: str, stdin: bytes | str = b"", **env: str
    ) -> subprocess.CompletedProcess[bytes]:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return subprocess.run(
            [HELPER, *args],
            input=data,
            capture_output=True,
            env={**self.env, **env},
            timeout=60,
            check=False,
        )

    def ok(self, *args: str, stdin: bytes | str = b"", **env: str) -> bytes:
        """Run, assert exit 0 and an empty stderr, return stdout."""
        result = self.run(*args, stdin=stdin, **env)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert result.stderr == b"", result.stderr
        return result.stdout

    def fail(self, *args: str, stdin: bytes | str = b"", **env: str) -> bytes:
        """Run, assert exit 1 with one line on stdout, return that line (no newline)."""
        result = self.run(*args, stdin=stdin, **env)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stdout.endswith(b"\n"), result.stdout
        assert result.stdout.count(b"\n") == 1, result.stdout
        return result.stdout[:-1]

    def store(self, server: str, username: str, secret: str, **env: str) -> None:
        doc = {"ServerURL": server, "Username": username, "Secret": secret}
        assert self.ok("store", stdin=json.dumps(doc) + "\n", **env) == b""

    def get(self, server: str, **env: str) -> Any:
        return json.loads(self.ok("get", stdin=server, **env))

    def list(self, **env: str) -> Any:
        return json.loads(self.ok("list", **env))


def tree_bytes(root: Path) -> dict[Path, bytes]:
    """Every regular file under ``root`` with its bytes."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [path for path, data in tree_bytes(root).items() if needle in data]
