"""Builders for the identity and credentials tests: a fresh SQLite store, fast bcrypt."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatchway.auth.credentials import passwords
from hatchway.auth.credentials.passwords import PasswordVerifier
from hatchway.metadata import MetadataStore

FAST = 4  # bcrypt's lowest cost: the tests check logic, not strength


def fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "DEFAULT_ROUNDS", FAST)


def new_store(tmp_path: Path) -> MetadataStore:
    return MetadataStore(f"sqlite:///{tmp_path / 'hatchway.db'}")


def verifier(**kw: object) -> PasswordVerifier:
    return PasswordVerifier(dummy_rounds=FAST, **kw)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
