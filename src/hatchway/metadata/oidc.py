"""``identity.oidc``'s rows: sign-ins in progress (``oidc_logins``) and the provider's
tokens kept for the re-checks (``oidc_tokens``).

A sign-in in progress is found by a SHA-256 of its ``state`` and taken once: the row is
deleted in the same transaction that reads it, so a second callback with the same state
finds nothing. The provider's tokens are stored as the caller hands them (encrypted by
``auth.identity.oidc``); this module never sees them in clear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update

from hatchway.metadata.engine import Database
from hatchway.metadata.tables import oidc_logins, oidc_tokens


@dataclass(frozen=True, slots=True)
class PendingLogin:
    browser_hash: str
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)
    next: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StoredTokens:
    refresh_token: str | None = field(repr=False)
    access_token: str | None = field(repr=False)
    updated_at: datetime


class OidcStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- sign-ins in progress ----------------------------------------------------------

    def begin(self, state_hash: str, login: PendingLogin, now: datetime) -> None:
        with self._db.write() as conn:
            conn.execute(delete(oidc_logins).where(oidc_logins.c.expires_at < now))
            conn.execute(
                insert(oidc_logins).values(
                    state_hash=state_hash,
                    browser_hash=login.browser_hash,
                    nonce=login.nonce,
                    verifier=login.verifier,
                    next=login.next,
                    expires_at=login.expires_at,
                )
            )

    def take(self, state_hash: str) -> PendingLogin | None:
        """The sign-in this state started, removed: a state is good for one callback."""
        with self._db.write() as conn:
            row = conn.execute(
                select(oidc_logins).where(oidc_logins.c.state_hash == state_hash)
            ).first()
            if row is None:
                return None
            gone = conn.execute(delete(oidc_logins).where(oidc_logins.c.state_hash == state_hash))
            if gone.rowcount != 1:
                return None  # another request took it first
        return PendingLogin(row.browser_hash, row.nonce, row.verifier, row.next, row.expires_at)

    # -- the provider's tokens ---------------------------------------------------------

    def tokens(self, account_id: int) -> StoredTokens | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(oidc_tokens).where(oidc_tokens.c.account_id == account_id)
            ).first()
        if row is None:
            return None
        return StoredTokens(row.refresh_token, row.access_token, row.updated_at)

    def save_tokens(
        self, account_id: int, refresh_token: str | None, access_token: str | None, now: datetime
    ) -> None:
        """Replace the account's tokens (and end any check in progress)."""
        values = {
            "refresh_token": refresh_token,
            "access_token": access_token,
            "updated_at": now,
            "checking_until": None,
        }
        with self._db.write() as conn:
            done = conn.execute(
                update(oidc_tokens).where(oidc_tokens.c.account_id == account_id).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(insert(oidc_tokens).values(account_id=account_id, **values))

    def drop_tokens(self, account_id: int) -> None:
        with self._db.write() as conn:
            conn.execute(delete(oidc_tokens).where(oidc_tokens.c.account_id == account_id))

    def claim_check(self, account_id: int, now: datetime, until: datetime) -> bool:
        """Take the account's re-check until ``until``: False while another worker or
        replica holds it (a rotating refresh token must be used once)."""
        with self._db.write() as conn:
            done = conn.execute(
                update(oidc_tokens)
                .where(
                    oidc_tokens.c.account_id == account_id,
                    or_(oidc_tokens.c.checking_until.is_(None), oidc_tokens.c.checking_until < now),
                )
                .values(checking_until=until)
            )
            if done.rowcount == 1:
                return True
            exists = conn.execute(
                select(oidc_tokens.c.account_id).where(oidc_tokens.c.account_id == account_id)
            ).first()
            if exists is None:  # no tokens stored (yet): the check is ours to make
                conn.execute(
                    insert(oidc_tokens).values(
                        account_id=account_id, updated_at=now, checking_until=until
                    )
                )
                return True
        return False

    def release_check(self, account_id: int) -> None:
        with self._db.write() as conn:
            conn.execute(
                update(oidc_tokens)
                .where(oidc_tokens.c.account_id == account_id)
                .values(checking_until=None)
            )
