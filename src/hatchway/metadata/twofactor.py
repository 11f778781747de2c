"""Second factors in SQL (``twofactor``, ``recovery_codes``): the TOTP secret of an account,
whether its enrolment is confirmed, the last accepted time step, and hashed recovery codes.

Never checks a code itself (that is ``auth.twofactor``); it stores what it is given and
makes the two single-use rules atomic across workers with conditional UPDATEs: a time step
is taken only if it is later than the last one taken, a recovery code only if unused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, or_, select, update

from hatchway.metadata.accounts import account_id
from hatchway.metadata.engine import Database
from hatchway.metadata.records import ConflictError, utcnow
from hatchway.metadata.tables import accounts, passkeys, recovery_codes, twofactor

TOTP = "totp"


@dataclass(frozen=True, slots=True)
class SecondFactor:
    account: str
    method: str
    secret: str  # as stored (possibly sealed)
    created_at: datetime
    confirmed_at: datetime | None
    last_step: int | None
    recovery_left: int = 0

    @property
    def active(self) -> bool:
        return self.confirmed_at is not None


_JOINED = twofactor.join(accounts, accounts.c.id == twofactor.c.account_id)


class TwoFactorStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, account: str) -> SecondFactor | None:
        left = (
            select(func.count())
            .where(
                recovery_codes.c.account_id == twofactor.c.account_id,
                recovery_codes.c.used_at.is_(None),
            )
            .scalar_subquery()
        )
        with self._db.read() as conn:
            row = conn.execute(
                select(twofactor, left.label("left"))
                .select_from(_JOINED)
                .where(accounts.c.name == account)
            ).first()
        if row is None:
            return None
        return SecondFactor(
            account=account,
            method=row.method,
            secret=row.secret,
            created_at=row.created_at,
            confirmed_at=row.confirmed_at,
            last_step=row.last_step,
            recovery_left=int(row.left or 0),
        )

    def is_active(self, account: str) -> bool:
        """Indexed reads: does this account have a confirmed TOTP or a passkey?"""
        with self._db.read() as conn:
            found = conn.scalar(
                select(twofactor.c.confirmed_at)
                .select_from(_JOINED)
                .where(accounts.c.name == account)
            )
            if found is not None:
                return True
            key = conn.scalar(
                select(passkeys.c.id)
                .select_from(passkeys.join(accounts, accounts.c.id == passkeys.c.account_id))
                .where(accounts.c.name == account)
                .limit(1)
            )
        return key is not None

    def start(self, account: str, secret: str, method: str = TOTP) -> None:
        """Begin (or restart) an enrolment; ConflictError if one is already confirmed."""
        with self._db.write() as conn:
            owner = account_id(conn, account)  # NotFoundError
            current = conn.execute(
                select(twofactor.c.confirmed_at).where(twofactor.c.account_id == owner)
            ).first()
            if current is not None and current.confirmed_at is not None:
                raise ConflictError(f"{account!r} already has two-factor authentication")
            conn.execute(delete(twofactor).where(twofactor.c.account_id == owner))
            conn.execute(delete(recovery_codes).where(recovery_codes.c.account_id == owner))
            conn.execute(
                insert(twofactor).values(
                    account_id=owner, method=method, secret=secret, created_at=utcnow()
                )
            )

    def confirm(self, account: str, step: int, code_hashes: Sequence[str]) -> bool:
        """Make a pending enrolment active at ``step`` with these recovery codes; False if
        there is no pending enrolment (already confirmed by a concurrent request)."""
        with self._db.write() as conn:
            owner = account_id(conn, account)
            done = conn.execute(
                update(twofactor)
                .where(twofactor.c.account_id == owner, twofactor.c.confirmed_at.is_(None))
                .values(confirmed_at=utcnow(), last_step=step)
            )
            if done.rowcount != 1:
                return False
            if code_hashes:
                conn.execute(
                    insert(recovery_codes),
                    [{"account_id": owner, "code_hash": h} for h in code_hashes],
                )
        return True

    def take_step(self, account: str, step: int) -> bool:
        """Record ``step`` as used if it is later than the last one used (atomic: of two
        requests with the same code, one wins)."""
        with self._db.write() as conn:
            owner = conn.scalar(select(accounts.c.id).where(accounts.c.name == account))
            if owner is None:
                return False
            done = conn.execute(
                update(twofactor)
                .where(
                    twofactor.c.account_id == owner,
                    twofactor.c.confirmed_at.is_not(None),
                    or_(twofactor.c.last_step.is_(None), twofactor.c.last_step < step),
                )
                .values(last_step=step)
            )
        return done.rowcount == 1

    def recovery_hashes(self, account: str) -> list[tuple[int, str]]:
        """The unused recovery codes' (id, hash)."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(recovery_codes.c.id, recovery_codes.c.code_hash)
                .select_from(
                    recovery_codes.join(accounts, accounts.c.id == recovery_codes.c.account_id)
                )
                .where(accounts.c.name == account, recovery_codes.c.used_at.is_(None))
                .order_by(recovery_codes.c.id)
            ).all()
        return [(int(r.id), str(r.code_hash)) for r in rows]

    def use_recovery(self, code_id: int) -> bool:
        """Mark a recovery code used; False if it already was (a concurrent use won)."""
        with self._db.write() as conn:
            done = conn.execute(
                update(recovery_codes)
                .where(and_(recovery_codes.c.id == code_id, recovery_codes.c.used_at.is_(None)))
                .values(used_at=utcnow())
            )
        return done.rowcount == 1

    def replace_recovery(self, account: str, code_hashes: Sequence[str]) -> None:
        """New recovery codes for an account with 2FA on; the old ones (used or not) go."""
        with self._db.write() as conn:
            owner = account_id(conn, account)  # NotFoundError
            conn.execute(delete(recovery_codes).where(recovery_codes.c.account_id == owner))
            conn.execute(
                insert(recovery_codes),
                [{"account_id": owner, "code_hash": h} for h in code_hashes],
            )

    def remove(self, account: str) -> bool:
        """Drop the account's second factors (TOTP, passkeys) and recovery codes; False
        if it had none."""
        with self._db.write() as conn:
            owner = account_id(conn, account)  # NotFoundError
            conn.execute(delete(recovery_codes).where(recovery_codes.c.account_id == owner))
            keys = conn.execute(delete(passkeys).where(passkeys.c.account_id == owner))
            done = conn.execute(delete(twofactor).where(twofactor.c.account_id == owner))
        return done.rowcount == 1 or keys.rowcount > 0
