"""Credentials in the OS keyring (Secret Service, KWallet, macOS Keychain, Windows Credential
Locker) through the ``keyring`` library, when it is installed and has a real backend.

Backends that do not protect secrets are refused: ``fail`` and ``null`` (nothing stored),
plaintext or "insecure" ones, and anything ``keyring`` itself ranks below "recommended"
(priority < 1, e.g. ``keyrings.alt`` files). The chainer is never used as such, since it
would fall back to its weaker members; its best acceptable member is used directly.

Each server's entry is one item (service ``docker-credential-hatchway``, username = server
URL, password = JSON of username and secret); a second item keeps the server → username
index that ``list`` needs, since keyrings cannot enumerate. Changes to the index happen
under an exclusive file lock.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, cast

from hatchway.client.secretstore import files
from hatchway.client.secretstore.base import ENV_BACKEND, Entry, NotFoundError, StoreError

SERVICE = "docker-credential-hatchway"
INDEX_SERVICE = "docker-credential-hatchway index"
INDEX_USER = "servers"
_REFUSED_WORDS = ("plaintext", "insecure", ".fail.", ".null.", "chainer")


class Backend(Protocol):
    """The part of ``keyring.backend.KeyringBackend`` used here."""

    priority: float

    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


def backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def acceptable(backend: Backend) -> bool:
    """A backend that keeps secrets encrypted by the OS."""
    name = backend_name(backend).lower()
    try:
        priority = float(backend.priority)
    except Exception:
        return False
    return priority >= 1 and not any(word in name for word in _REFUSED_WORDS)


def find_backend() -> tuple[Backend | None, str]:
    """The keyring backend to use (or None) and what ``keyring`` offered, for messages."""
    try:
        core = importlib.import_module("keyring")
    except ImportError:
        return None, "the keyring library is not installed"
    try:
        chosen = cast("Backend", core.get_keyring())
    except Exception as exc:  # a broken keyring configuration raises anything
        return None, f"keyring failed to load a backend: {exc}"
    members = cast("list[Backend] | None", getattr(type(chosen), "backends", None))
    candidates = list(members) if "chainer" in backend_name(chosen).lower() and members else []
    for backend in candidates or [chosen]:
        if acceptable(backend):
            return backend, backend_name(backend)
    return None, f"keyring offers only {backend_name(chosen)}, which does not protect secrets"


class KeyringStore:
    """A :class:`~hatchway.client.secretstore.base.SecretStore` in the OS keyring."""

    def __init__(self, backend: Backend, lock_path: Path) -> None:
        self.backend = backend
        self.lock_path = lock_path

    @classmethod
    def open(cls, lock_path: Path) -> KeyringStore:
        backend, why = find_backend()
        if backend is None:
            raise StoreError(f"no usable OS keyring ({ENV_BACKEND}=keyring): {why}")
        return cls(backend, lock_path)

    def get(self, server_url: str) -> Entry:
        raw = self._call(self.backend.get_password, SERVICE, server_url)
        if raw is None:
            raise NotFoundError
        try:
            item = json.loads(raw)
            return Entry(str(item["Username"]), str(item["Secret"]))
        except (ValueError, KeyError, TypeError):
            raise StoreError(f"the keyring item for {server_url} is not hatchway's") from None

    def list(self) -> dict[str, str]:
        return self._index()

    def add(self, server_url: str, entry: Entry) -> None:
        item = json.dumps({"Username": entry.username, "Secret": entry.secret})
        with files.exclusive_lock(self.lock_path):
            self._call(self.backend.set_password, SERVICE, server_url, item)
            index = self._index()
            index[server_url] = entry.username
            self._save_index(index)

    def delete(self, server_url: str) -> None:
        with files.exclusive_lock(self.lock_path):
            index = self._index()
            if self._call(self.backend.get_password, SERVICE, server_url) is None:
                if index.pop(server_url, None) is not None:
                    self._save_index(index)
                raise NotFoundError
            self._call(self.backend.delete_password, SERVICE, server_url)
            if index.pop(server_url, None) is not None:
                self._save_index(index)

    def _index(self) -> dict[str, str]:
        raw = self._call(self.backend.get_password, INDEX_SERVICE, INDEX_USER)
        if raw is None:
            return {}
        try:
            loaded = json.loads(raw)
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}

    def _save_index(self, index: dict[str, str]) -> None:
        self._call(self.backend.set_password, INDEX_SERVICE, INDEX_USER, json.dumps(index))

    def _call(self, method: Callable[..., str | None], *args: str) -> str | None:
        """Run a keyring call; its errors become one-line :class:`StoreError`s."""
        try:
            return method(*args)
        except Exception as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"keyring {backend_name(self.backend)}: {detail}") from None
