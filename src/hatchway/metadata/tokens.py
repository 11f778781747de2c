"""Personal access tokens (also a robot's only credential) and OAuth2 refresh tokens.

Both are stored as the SHA-256 of a high-entropy secret (``auth.credentials`` makes the
secret and the hash), so lookup is one indexed equality and the table is useless to a
thief. Use is recorded at most once per ``interval`` (60 s) per token: the UPDATE's own
WHERE clause decides, so concurrent workers don't all write.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Table, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from hatchway.metadata.accounts import account_id, fold_accounts
from hatchway.metadata.engine import Database
from hatchway.metadata.records import (
    TOKEN_NAME_RE,
    AccessToken,
    Account,
    ConflictError,
    NotFoundError,
    RefreshToken,
    check_name,
    utcnow,
)
from hatchway.metadata.tables import access_tokens, accounts, groups, memberships, refresh_tokens

USE_RECORD_INTERVAL = 60.0
log = logging.getLogger(__name__)

_TOKENS = select(access_tokens, accounts.c.name.label("account_name")).join(
    accounts, accounts.c.id == access_tokens.c.account_id
)


# A login by token: the token, its account and the account's groups (one row per group).
_TOKEN_LOGIN = select(
    accounts,
    groups.c.name.label("group_name"),
    *[c.label(f"t_{c.name}") for c in access_tokens.c],
).select_from(
    access_tokens.join(accounts, accounts.c.id == access_tokens.c.account_id)
    .outerjoin(memberships, memberships.c.account_id == accounts.c.id)
    .outerjoin(groups, groups.c.id == memberships.c.group_id)
)


def _access_token(row: Row[Any]) -> AccessToken:
    return AccessToken(
        id=row.id,
        account=row.account_name,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        last_used_addr=row.last_used_addr,
    )


def _refresh_token(row: Row[Any]) -> RefreshToken:
    return RefreshToken(
        id=row.id,
        subject=row.subject,
        backend=row.backend,
        client_id=row.client_id,
        access_token_id=row.access_token_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        last_used_addr=row.last_used_addr,
        created_addr=row.created_addr,
        binding=row.binding,
    )


def _live(table: Table, now: datetime) -> Any:
    return (table.c.revoked_at.is_(None)) & (
        table.c.expires_at.is_(None) | (table.c.expires_at > now)
    )


def _touch(db: Database, table: Table, token_id: int, addr: str | None, interval: float) -> bool:
    """Best effort: a busy database must not fail the login that triggered it."""
    now = utcnow()
    try:
        with db.write() as conn:
            done = conn.execute(
                update(table)
                .where(
                    table.c.id == token_id,
                    or_(
                        table.c.last_used_at.is_(None),
                        table.c.last_used_at < now - timedelta(seconds=interval),
                    ),
                )
                .values(last_used_at=now, last_used_addr=addr[:64] if addr else None)
            )
            return done.rowcount > 0
    except OperationalError as exc:
        log.warning("could not record use of %s %d: %s", table.name, token_id, exc.orig)
        return False


class AccessTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        account: str,
        *,
        name: str,
        token_hash: str,
        scopes: Sequence[str],
        expires_at: datetime | None,
    ) -> AccessToken:
        check_name("token", name, TOKEN_NAME_RE)
        try:
            with self._db.write() as conn:
                aid = account_id(conn, account)
                new_id = conn.execute(
                    insert(access_tokens)
                    .values(
                        account_id=aid,
                        name=name,
                        token_hash=token_hash,
                        scopes=" ".join(scopes),
                        created_at=utcnow(),
                        expires_at=expires_at,
                    )
                    .returning(access_tokens.c.id)
                ).scalar_one()
        except IntegrityError:
            raise ConflictError(f"{account!r} already has a live token named {name!r}") from None
        found = self.get(new_id)
        assert found is not None
        return found

    def get(self, token_id: int) -> AccessToken | None:
        with self._db.read() as conn:
            row = conn.execute(_TOKENS.where(access_tokens.c.id == token_id)).first()
        return _access_token(row) if row else None

    def find_active(self, token_hash: str) -> tuple[AccessToken, Account] | None:
        """The live token with this hash and its account (with groups), in one query."""
        stmt = _TOKEN_LOGIN.where(
            access_tokens.c.token_hash == token_hash, _live(access_tokens, utcnow())
        )
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        # The index found it; compare again in constant time (collations, defense in depth).
        if not rows or not hmac.compare_digest(rows[0].t_token_hash, token_hash):
            return None
        m = rows[0]._mapping
        token = AccessToken(
            id=m["t_id"],
            account=m["name"],
            name=m["t_name"],
            scopes=tuple(m["t_scopes"].split()),
            created_at=m["t_created_at"],
            expires_at=m["t_expires_at"],
            revoked_at=m["t_revoked_at"],
            last_used_at=m["t_last_used_at"],
            last_used_addr=m["t_last_used_addr"],
        )
        return token, fold_accounts(rows)[0]

    def list(
        self, account: str | None = None, *, include_inactive: bool = False
    ) -> list[AccessToken]:
        stmt = _TOKENS.order_by(accounts.c.name, access_tokens.c.id)
        if account is not None:
            stmt = stmt.where(accounts.c.name == account)
        if not include_inactive:
            stmt = stmt.where(_live(access_tokens, utcnow()))
        with self._db.read() as conn:
            return [_access_token(row) for row in conn.execute(stmt)]

    def revoke(self, account: str, ref: str) -> AccessToken:
        """Revoke ``account``'s token by id (digits) or by live name."""
        with self._db.write() as conn:
            row = self._resolve(conn, account, ref)
            if row.revoked_at is None:
                conn.execute(
                    update(access_tokens)
                    .where(access_tokens.c.id == row.id)
                    .values(revoked_at=utcnow())
                )
        self._db.revoked("token")
        found = self.get(row.id)
        assert found is not None
        return found

    def touch(self, token_id: int, addr: str | None, interval: float = USE_RECORD_INTERVAL) -> bool:
        """Record a use unless one was recorded within ``interval`` seconds."""
        return _touch(self._db, access_tokens, token_id, addr, interval)

    @staticmethod
    def _resolve(conn: Connection, account: str, ref: str) -> Row[Any]:
        stmt = _TOKENS.where(accounts.c.name == account)
        if ref.isdigit():
            stmt = stmt.where(access_tokens.c.id == int(ref))
        else:
            stmt = stmt.where(access_tokens.c.name == ref, access_tokens.c.revoked_at.is_(None))
        row = conn.execute(stmt).first()
        if row is None:
            account_id(conn, account)  # a clearer error when the account is the problem
            raise NotFoundError(f"{account!r} has no token {ref!r}")
        return row


class RefreshTokenStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        subject: str,
        *,
        backend: str,
        client_id: str,
        token_hash: str,
        access_token_id: int | None = None,
        expires_at: datetime | None = None,
        binding: str | None = None,
        created_addr: str | None = None,
    ) -> RefreshToken:
        with self._db.write() as conn:
            row = conn.execute(
                insert(refresh_tokens)
                .values(
                    subject=subject,
                    backend=backend,
                    client_id=client_id[:128],
                    token_hash=token_hash,
                    access_token_id=access_token_id,
                    created_at=utcnow(),
                    expires_at=expires_at,
                    binding=binding,
                    created_addr=created_addr[:64] if created_addr else None,
                )
                .returning(*refresh_tokens.c)
            ).one()
        return _refresh_token(row)

    def get(self, token_id: int) -> RefreshToken | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(refresh_tokens).where(refresh_tokens.c.id == token_id)
            ).first()
        return _refresh_token(row) if row else None

    def find_active(self, token_hash: str) -> RefreshToken | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(refresh_tokens).where(
                    refresh_tokens.c.token_hash == token_hash, _live(refresh_tokens, utcnow())
                )
            ).first()
        if row is None or not hmac.compare_digest(row.token_hash, token_hash):
            return None
        return _refresh_token(row)

    def list(
        self, subject: str | None = None, *, include_inactive: bool = False
    ) -> list[RefreshToken]:
        stmt = select(refresh_tokens).order_by(refresh_tokens.c.id)
        if subject is not None:
            stmt = stmt.where(refresh_tokens.c.subject == subject)
        if not include_inactive:
            stmt = stmt.where(_live(refresh_tokens, utcnow()))
        with self._db.read() as conn:
            return [_refresh_token(row) for row in conn.execute(stmt)]

    def revoke(self, token_id: int) -> bool:
        with self._db.write() as conn:
            done = conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.id == token_id, refresh_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return done.rowcount > 0

    def revoke_subject(self, subject: str, backend: str | None = None) -> int:
        """Revoke every live refresh token of ``subject`` (log out everywhere)."""
        stmt = update(refresh_tokens).where(
            refresh_tokens.c.subject == subject, refresh_tokens.c.revoked_at.is_(None)
        )
        if backend is not None:
            stmt = stmt.where(refresh_tokens.c.backend == backend)
        with self._db.write() as conn:
            return conn.execute(stmt.values(revoked_at=utcnow())).rowcount

    def revoke_all(self) -> int:
        """Revoke every live refresh token (everyone logs in again)."""
        with self._db.write() as conn:
            return conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount

    def touch(self, token_id: int, addr: str | None, interval: float = USE_RECORD_INTERVAL) -> bool:
        return _touch(self._db, refresh_tokens, token_id, addr, interval)
