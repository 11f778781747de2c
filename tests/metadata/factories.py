"""Small builders shared by the metadata conformance modules."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hatchway.metadata import MetadataStore

HASH = "$2b$04$" + "a" * 53
NOW = datetime.now(UTC)


def th(text: str) -> str:
    """A token hash as the credentials layer would make it."""
    return hashlib.sha256(text.encode()).hexdigest()


def make_token(
    store: MetadataStore,
    account: str,
    name: str = "ci",
    *,
    expires_at: datetime | None = None,
    scopes: tuple[str, ...] = ("repository:a/*:pull",),
) -> int:
    """A token whose hash is ``th(account + name)``; returns its id."""
    token = store.tokens.create(
        account, name=name, token_hash=th(account + name), scopes=scopes, expires_at=expires_at
    )
    return token.id
