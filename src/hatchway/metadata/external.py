"""Federated accounts' directory state: which entry an account is, its groups there, and
when the directory last said so (``external_identities``).

The account itself is a row of ``accounts`` with ``source`` set and no password; it is
made here together with its identity row, in one transaction, at the first login.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from hatchway.metadata.engine import Database
from hatchway.metadata.records import (
    ACCOUNT_NAME_RE,
    AccountKind,
    ConflictError,
    NotFoundError,
    check_name,
)
from hatchway.metadata.tables import accounts, external_identities


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    account_id: int
    account: str
    source: str
    external_id: str
    groups: frozenset[str]
    checked_at: datetime
    disabled_at: datetime | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


_SELECT = select(
    external_identities,
    accounts.c.name.label("account_name"),
).select_from(external_identities.join(accounts, accounts.c.id == external_identities.c.account_id))


def _record(row: Row[Any]) -> ExternalIdentity:
    groups = row.groups
    return ExternalIdentity(
        account_id=row.account_id,
        account=row.account_name,
        source=row.source,
        external_id=row.external_id,
        groups=frozenset(str(g) for g in groups) if isinstance(groups, list) else frozenset(),
        checked_at=row.checked_at,
        disabled_at=row.disabled_at,
    )


class ExternalIdentityStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, account: str) -> ExternalIdentity | None:
        with self._db.read() as conn:
            row = conn.execute(_SELECT.where(accounts.c.name == account)).first()
        return _record(row) if row is not None else None

    def find(self, source: str, external_id: str) -> ExternalIdentity | None:
        """The account linked to this directory entry, if any."""
        with self._db.read() as conn:
            row = conn.execute(
                _SELECT.where(
                    external_identities.c.source == source,
                    external_identities.c.external_id == external_id,
                )
            ).first()
        return _record(row) if row is not None else None

    def create(
        self,
        name: str,
        *,
        source: str,
        external_id: str,
        groups: frozenset[str],
        admin: bool,
        now: datetime,
    ) -> ExternalIdentity:
        """Make the account (no password) and its identity row; ConflictError if the
        name or the entry is taken already."""
        check_name("account", name, ACCOUNT_NAME_RE)
        try:
            with self._db.write() as conn:
                account_id = conn.execute(
                    insert(accounts)
                    .values(
                        name=name,
                        kind=AccountKind.USER.value,
                        password_hash=None,
                        admin=admin,
                        created_at=now,
                        source=source,
                    )
                    .returning(accounts.c.id)
                ).scalar_one()
                conn.execute(
                    insert(external_identities).values(
                        account_id=account_id,
                        source=source,
                        external_id=external_id,
                        groups=sorted(groups),
                        checked_at=now,
                    )
                )
        except IntegrityError:
            raise ConflictError(f"account {name!r} or its directory entry exists") from None
        found = self.get(name)
        assert found is not None
        return found

    def update(
        self,
        account_id: int,
        *,
        external_id: str,
        groups: frozenset[str],
        admin: bool,
        now: datetime,
    ) -> None:
        """The directory's answer at ``now``: entry, groups, admin status; enabled."""
        with self._db.write() as conn:
            done = conn.execute(
                update(external_identities)
                .where(external_identities.c.account_id == account_id)
                .values(
                    external_id=external_id, groups=sorted(groups), checked_at=now, disabled_at=None
                )
            )
            if done.rowcount == 0:
                raise NotFoundError(f"no federated account with id {account_id}")
            conn.execute(update(accounts).where(accounts.c.id == account_id).values(admin=admin))

    def disable(self, account_id: int, now: datetime) -> None:
        """The directory no longer knows the account, or disabled it: no groups, no admin."""
        with self._db.write() as conn:
            conn.execute(
                update(external_identities)
                .where(external_identities.c.account_id == account_id)
                .values(groups=[], checked_at=now, disabled_at=now)
            )
            conn.execute(update(accounts).where(accounts.c.id == account_id).values(admin=False))
