"""Passkeys (WebAuthn credentials) as second factors (``passkeys``), and the outstanding
WebAuthn challenges (``webauthn_challenges``).

Never verifies anything itself (that is ``auth.passkeys`` with the ``webauthn`` package);
it stores what it is given and makes the single-use rules atomic across workers: a
challenge is taken by a DELETE that only one request can win, and a signature counter
only moves forward (conditional UPDATE), so a cloned authenticator's replayed count loses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hatchway.metadata.accounts import account_id
from hatchway.metadata.engine import Database
from hatchway.metadata.records import ConflictError, utcnow
from hatchway.metadata.tables import accounts, passkeys, webauthn_challenges

_JOINED = passkeys.join(accounts, accounts.c.id == passkeys.c.account_id)


@dataclass(frozen=True, slots=True)
class Passkey:
    id: int
    account: str
    name: str
    credential_id: str  # base64url
    public_key: str  # base64url COSE key
    sign_count: int
    transports: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None


def _passkey(row: Any, account: str) -> Passkey:
    return Passkey(
        id=int(row.id),
        account=account,
        name=row.name,
        credential_id=row.credential_id,
        public_key=row.public_key,
        sign_count=int(row.sign_count),
        transports=tuple(t for t in (row.transports or "").split(",") if t),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


class PasskeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def list(self, account: str) -> list[Passkey]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(passkeys)
                .select_from(_JOINED)
                .where(accounts.c.name == account)
                .order_by(passkeys.c.id)
            ).all()
        return [_passkey(r, account) for r in rows]

    def count(self, account: str) -> int:
        with self._db.read() as conn:
            found = conn.scalar(
                select(func.count()).select_from(_JOINED).where(accounts.c.name == account)
            )
        return int(found or 0)

    def add(
        self,
        account: str,
        *,
        name: str,
        credential_id: str,
        public_key: str,
        sign_count: int,
        transports: tuple[str, ...] = (),
    ) -> Passkey:
        """ConflictError: the account has a passkey of that name, or the credential is
        registered already (to any account). NotFoundError: no such account."""
        now = utcnow()
        try:
            with self._db.write() as conn:
                owner = account_id(conn, account)
                taken = conn.scalar(
                    select(passkeys.c.id).where(
                        passkeys.c.account_id == owner, passkeys.c.name == name
                    )
                )
                if taken is not None:
                    raise ConflictError(f"you already have a passkey named {name!r}")
                made = conn.execute(
                    insert(passkeys).values(
                        account_id=owner,
                        name=name,
                        credential_id=credential_id,
                        public_key=public_key,
                        sign_count=sign_count,
                        transports=",".join(transports)[:200] or None,
                        created_at=now,
                    )
                )
                key = made.inserted_primary_key
        except IntegrityError:
            raise ConflictError("this passkey is registered already") from None
        assert key is not None
        return Passkey(
            int(key[0]), account, name, credential_id, public_key, sign_count, transports, now, None
        )

    def find(self, account: str, credential_id: str) -> Passkey | None:
        """The account's passkey with this credential ID (another account's is None)."""
        with self._db.read() as conn:
            row = conn.execute(
                select(passkeys)
                .select_from(_JOINED)
                .where(accounts.c.name == account, passkeys.c.credential_id == credential_id)
            ).first()
        return _passkey(row, account) if row is not None else None

    def used(self, passkey_id: int, old_count: int, new_count: int) -> bool:
        """Record a use: the counter moves from ``old_count`` to ``new_count`` (checked to
        be later by the caller) only if it still is ``old_count``: of two assertions with
        the same counter, one wins."""
        with self._db.write() as conn:
            done = conn.execute(
                update(passkeys)
                .where(passkeys.c.id == passkey_id, passkeys.c.sign_count == old_count)
                .values(sign_count=new_count, last_used_at=utcnow())
            )
        return done.rowcount == 1

    def remove(self, account: str, passkey_id: int) -> bool:
        with self._db.write() as conn:
            owner = account_id(conn, account)
            done = conn.execute(
                delete(passkeys).where(passkeys.c.id == passkey_id, passkeys.c.account_id == owner)
            )
        return done.rowcount == 1

    # -- challenges --------------------------------------------------------------------

    def add_challenge(
        self, challenge: str, subject: str, purpose: str, expires_at: datetime
    ) -> None:
        now = utcnow()
        with self._db.write() as conn:
            conn.execute(delete(webauthn_challenges).where(webauthn_challenges.c.expires_at < now))
            conn.execute(
                insert(webauthn_challenges).values(
                    challenge=challenge,
                    subject=subject[:128],
                    purpose=purpose,
                    expires_at=expires_at,
                )
            )

    def take_challenge(self, challenge: str, subject: str, purpose: str) -> bool:
        """Use up a live challenge issued to ``subject`` for ``purpose`` (once)."""
        with self._db.write() as conn:
            done = conn.execute(
                delete(webauthn_challenges).where(
                    webauthn_challenges.c.challenge == challenge[:128],
                    webauthn_challenges.c.subject == subject,
                    webauthn_challenges.c.purpose == purpose,
                    webauthn_challenges.c.expires_at > utcnow(),
                )
            )
        return done.rowcount == 1
