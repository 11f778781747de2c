"""What every secret store offers, its errors, and where its files live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

NOT_FOUND_MESSAGE = "credentials not found in native keychain"

ENV_BACKEND = "HATCHWAY_CREDENTIALS_BACKEND"
ENV_FILE = "HATCHWAY_CREDENTIALS_FILE"
ENV_KEYFILE = "HATCHWAY_CREDENTIALS_KEYFILE"
ENV_PASSPHRASE = "HATCHWAY_CREDENTIALS_PASSPHRASE"  # noqa: S105 (a variable's name)


class StoreError(Exception):
    """The store cannot do what was asked; the message says why, on one line."""


class NotFoundError(StoreError):
    """No credentials for that server (the message docker's client library looks for)."""

    def __init__(self) -> None:
        super().__init__(NOT_FOUND_MESSAGE)


@dataclass(frozen=True)
class Entry:
    username: str
    secret: str


class SecretStore(Protocol):
    """Credentials by server URL. The URL is a key, compared exactly (as the reference
    helpers other than osxkeychain do)."""

    def add(self, server_url: str, entry: Entry) -> None: ...

    def get(self, server_url: str) -> Entry:
        """Raises :class:`NotFoundError` when there is none."""
        ...

    def delete(self, server_url: str) -> None:
        """Raises :class:`NotFoundError` when there is none."""
        ...

    def list(self) -> dict[str, str]:
        """Server URL → username."""
        ...


@dataclass(frozen=True)
class Settings:
    """Where the encrypted file store keeps things, from the environment."""

    backend: str  # auto | file | keyring
    file: Path
    keyfile: Path
    passphrase: str | None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        environ = dict(os.environ) if env is None else env
        base = config_dir(environ)
        backend = environ.get(ENV_BACKEND, "").strip().lower() or "auto"
        if backend not in ("auto", "file", "keyring"):
            raise StoreError(f"{ENV_BACKEND} must be file or keyring, not {backend!r}")
        return cls(
            backend=backend,
            file=Path(environ.get(ENV_FILE) or base / "credentials.enc"),
            keyfile=Path(environ.get(ENV_KEYFILE) or base / "credentials.key"),
            passphrase=environ.get(ENV_PASSPHRASE) or None,
        )


def config_dir(environ: dict[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/hatchway``, else ``~/.config/hatchway``."""
    xdg = environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "hatchway"
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".config" / "hatchway"
