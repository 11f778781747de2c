"""Accounts (users and robots), groups and memberships.

Password hashes come in already hashed (bcrypt, by ``auth.credentials.passwords``): the
store never sees a password. Changing a password or deleting an account also revokes the
account's refresh tokens in the same transaction, so a stolen session ends with it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from hatchway.metadata.engine import Database
from hatchway.metadata.records import (
    ACCOUNT_NAME_RE,
    GROUP_NAME_RE,
    Account,
    AccountKind,
    ConflictError,
    Group,
    MetadataError,
    NotFoundError,
    check_name,
    utcnow,
)
from hatchway.metadata.tables import accounts, groups, memberships, refresh_tokens

LOCAL_BACKEND = "local"


def fold_accounts(rows: Iterable[Row[Any]]) -> list[Account]:
    """Rows of ``accounts LEFT JOIN groups`` (one per membership) -> accounts with groups."""
    by_id: dict[int, tuple[Row[Any], set[str]]] = {}
    for row in rows:
        entry = by_id.setdefault(row.id, (row, set()))
        if row.group_name is not None:
            entry[1].add(row.group_name)
    return [
        Account(
            id=row.id,
            name=row.name,
            kind=AccountKind(row.kind),
            admin=bool(row.admin),
            groups=frozenset(names),
            created_at=row.created_at,
            password_hash=row.password_hash,
            password_changed_at=row.password_changed_at,
            source=row.source or LOCAL_BACKEND,
            disabled_at=row.disabled_at,
        )
        for row, names in by_id.values()
    ]


ACCOUNTS_WITH_GROUPS = (
    select(accounts, groups.c.name.label("group_name"))
    .select_from(
        accounts.outerjoin(memberships, memberships.c.account_id == accounts.c.id).outerjoin(
            groups, groups.c.id == memberships.c.group_id
        )
    )
    .order_by(accounts.c.name)
)


def account_id(conn: Connection, name: str) -> int:
    found = conn.scalar(select(accounts.c.id).where(accounts.c.name == name))
    if found is None:
        raise NotFoundError(f"no account named {name!r}")
    return int(found)


def _group_id(conn: Connection, name: str) -> int:
    found = conn.scalar(select(groups.c.id).where(groups.c.name == name))
    if found is None:
        raise NotFoundError(f"no group named {name!r}")
    return int(found)


class AccountStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- accounts --------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        kind: AccountKind = AccountKind.USER,
        password_hash: str | None = None,
        admin: bool = False,
        source: str | None = None,
    ) -> Account:
        """``source``: None (local), or the identity source that made the account."""
        check_name("account", name, ACCOUNT_NAME_RE)
        if kind is AccountKind.ROBOT and password_hash is not None:
            raise MetadataError("robot accounts have no password, only tokens")
        now = utcnow()
        try:
            with self._db.write() as conn:
                conn.execute(
                    insert(accounts).values(
                        name=name,
                        kind=kind.value,
                        password_hash=password_hash,
                        admin=admin,
                        created_at=now,
                        password_changed_at=now if password_hash else None,
                        source=source,
                    )
                )
        except IntegrityError:
            raise ConflictError(f"account {name!r} already exists") from None
        return self.require(name)

    def get(self, name: str) -> Account | None:
        """The account with its groups, in one query (this is on the login path)."""
        with self._db.read() as conn:
            found = fold_accounts(conn.execute(ACCOUNTS_WITH_GROUPS.where(accounts.c.name == name)))
        return found[0] if found else None

    def require(self, name: str) -> Account:
        found = self.get(name)
        if found is None:
            raise NotFoundError(f"no account named {name!r}")
        return found

    def list(self) -> list[Account]:
        with self._db.read() as conn:
            return fold_accounts(conn.execute(ACCOUNTS_WITH_GROUPS))

    def page(self, n: int, last: str | None = None) -> tuple[builtins.list[Account], str | None]:
        """Up to ``n`` accounts named after ``last``, by name, and the name to continue
        after (None on the last page). Names first, then their groups: a LIMIT on the
        joined rows would cut an account's groups in two."""
        names_after = select(accounts.c.name).order_by(accounts.c.name).limit(n + 1)
        if last is not None:
            names_after = names_after.where(accounts.c.name > last)
        with self._db.read() as conn:
            names = list(conn.scalars(names_after))
            shown = names[:n]
            if not shown:
                return [], None
            found = fold_accounts(
                conn.execute(ACCOUNTS_WITH_GROUPS.where(accounts.c.name.in_(shown)))
            )
        return found, shown[-1] if len(names) > n else None

    def set_password(self, name: str, password_hash: str) -> None:
        with self._db.write() as conn:
            row = conn.execute(
                select(accounts.c.id, accounts.c.kind, accounts.c.source).where(
                    accounts.c.name == name
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no account named {name!r}")
            if row.kind == AccountKind.ROBOT.value:
                raise MetadataError(f"{name!r} is a robot account: it has no password")
            if row.source is not None and row.source != LOCAL_BACKEND:
                raise MetadataError(
                    f"{name!r} is an account of {row.source}: its password is kept there"
                )
            now = utcnow()
            conn.execute(
                update(accounts)
                .where(accounts.c.id == row.id)
                .values(password_hash=password_hash, password_changed_at=now)
            )
            _revoke_sessions(conn, name, now)

    def set_admin(self, name: str, admin: bool) -> None:
        with self._db.write() as conn:
            done = conn.execute(update(accounts).where(accounts.c.name == name).values(admin=admin))
            if done.rowcount == 0:
                raise NotFoundError(f"no account named {name!r}")

    def set_disabled(self, name: str, disabled: bool) -> bool:
        """Disable (or enable) an account; False if it already was. Disabling also revokes
        every refresh token of the account (docker sessions end for good, not only while
        it stays disabled); its access tokens are kept and work again once re-enabled."""
        with self._db.write() as conn:
            row = conn.execute(
                select(accounts.c.id, accounts.c.disabled_at).where(accounts.c.name == name)
            ).first()
            if row is None:
                raise NotFoundError(f"no account named {name!r}")
            if (row.disabled_at is not None) == disabled:
                return False
            now = utcnow()
            conn.execute(
                update(accounts)
                .where(accounts.c.id == row.id)
                .values(disabled_at=now if disabled else None)
            )
            if disabled:
                conn.execute(
                    update(refresh_tokens)
                    .where(
                        refresh_tokens.c.subject == name,
                        refresh_tokens.c.backend == LOCAL_BACKEND,
                        refresh_tokens.c.revoked_at.is_(None),
                    )
                    .values(revoked_at=now)
                )
        self._db.revoked("account")
        return True

    def delete(self, name: str) -> None:
        """Delete the account; its tokens, memberships and sessions go with it (also a
        federated account's: it would be made again at its next login, not its sessions)."""
        with self._db.write() as conn:
            source = conn.scalar(select(accounts.c.source).where(accounts.c.name == name))
            done = conn.execute(delete(accounts).where(accounts.c.name == name))
            if done.rowcount == 0:
                raise NotFoundError(f"no account named {name!r}")
            conn.execute(
                delete(refresh_tokens).where(
                    refresh_tokens.c.subject == name,
                    refresh_tokens.c.backend.in_({LOCAL_BACKEND, source or LOCAL_BACKEND}),
                )
            )
        self._db.revoked("account")

    # -- groups ----------------------------------------------------------------------

    def create_group(self, name: str) -> None:
        check_name("group", name, GROUP_NAME_RE)
        try:
            with self._db.write() as conn:
                conn.execute(insert(groups).values(name=name, created_at=utcnow()))
        except IntegrityError:
            raise ConflictError(f"group {name!r} already exists") from None

    def delete_group(self, name: str) -> None:
        with self._db.write() as conn:
            gid = _group_id(conn, name)
            conn.execute(delete(memberships).where(memberships.c.group_id == gid))
            conn.execute(delete(groups).where(groups.c.id == gid))

    def list_groups(self) -> builtins.list[Group]:
        stmt = (
            select(groups.c.name, groups.c.created_at, accounts.c.name.label("member"))
            .select_from(
                groups.outerjoin(memberships, memberships.c.group_id == groups.c.id).outerjoin(
                    accounts, accounts.c.id == memberships.c.account_id
                )
            )
            .order_by(groups.c.name, accounts.c.name)
        )
        found: dict[str, tuple[Any, builtins.list[str]]] = {}
        with self._db.read() as conn:
            for row in conn.execute(stmt):
                entry = found.setdefault(row.name, (row.created_at, []))
                if row.member is not None:
                    entry[1].append(row.member)
        return [Group(name, tuple(members), created) for name, (created, members) in found.items()]

    def add_member(self, group: str, account: str) -> bool:
        """Add ``account`` to ``group``; False if it was a member already."""
        with self._db.write() as conn:
            gid, aid = _group_id(conn, group), account_id(conn, account)
            exists = conn.scalar(
                select(memberships.c.group_id).where(
                    memberships.c.group_id == gid, memberships.c.account_id == aid
                )
            )
            if exists is not None:
                return False
            conn.execute(insert(memberships).values(group_id=gid, account_id=aid))
            return True

    def remove_member(self, group: str, account: str) -> bool:
        """Remove ``account`` from ``group``; False if it was not a member."""
        with self._db.write() as conn:
            gid, aid = _group_id(conn, group), account_id(conn, account)
            done = conn.execute(
                delete(memberships).where(
                    memberships.c.group_id == gid, memberships.c.account_id == aid
                )
            )
            return done.rowcount > 0


def _revoke_sessions(conn: Connection, subject: str, now: Any) -> None:
    conn.execute(
        update(refresh_tokens)
        .where(
            refresh_tokens.c.subject == subject,
            refresh_tokens.c.backend == LOCAL_BACKEND,
            refresh_tokens.c.access_token_id.is_(None),
            refresh_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
