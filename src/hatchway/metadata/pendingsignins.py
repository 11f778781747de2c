"""Web sign-ins waiting for their second factor (``pending_signins``).

Only the SHA-256 of the browser's cookie is stored. A pending sign-in is live until
``expires_at`` and until it is taken: :meth:`PendingSignInStore.take` marks it used with a
conditional UPDATE, so of two requests finishing the same sign-in one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update

from hatchway.metadata.engine import Database
from hatchway.metadata.records import utcnow
from hatchway.metadata.tables import pending_signins


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    id: int
    subject: str
    backend: str
    purpose: str
    via: str
    target: str
    created_at: datetime
    expires_at: datetime


class PendingSignInStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        subject: str,
        *,
        secret_hash: str,
        backend: str,
        purpose: str,
        via: str,
        target: str,
        expires_at: datetime,
    ) -> int:
        now = utcnow()
        with self._db.write() as conn:
            # Forget the ones that ended (taken or expired) a while ago: no job needed.
            conn.execute(
                delete(pending_signins).where(
                    or_(
                        pending_signins.c.expires_at < now,
                        pending_signins.c.used_at.is_not(None),
                    )
                )
            )
            made = conn.execute(
                insert(pending_signins).values(
                    secret_hash=secret_hash,
                    subject=subject[:128],
                    backend=backend[:32],
                    purpose=purpose,
                    via=via[:16],
                    target=target[:1024],
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            key = made.inserted_primary_key
        assert key is not None
        return int(key[0])

    def find(self, secret_hash: str) -> PendingSignIn | None:
        """The live (not taken, not expired) pending sign-in of this cookie hash."""
        with self._db.read() as conn:
            row = conn.execute(
                select(pending_signins).where(
                    pending_signins.c.secret_hash == secret_hash,
                    pending_signins.c.used_at.is_(None),
                    pending_signins.c.expires_at > utcnow(),
                )
            ).first()
        if row is None:
            return None
        return PendingSignIn(
            id=row.id,
            subject=row.subject,
            backend=row.backend,
            purpose=row.purpose,
            via=row.via,
            target=row.target,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    def take(self, pending_id: int) -> bool:
        """Use it up; False if it was taken already or has expired."""
        with self._db.write() as conn:
            done = conn.execute(
                update(pending_signins)
                .where(
                    pending_signins.c.id == pending_id,
                    pending_signins.c.used_at.is_(None),
                    pending_signins.c.expires_at > utcnow(),
                )
                .values(used_at=utcnow())
            )
        return done.rowcount == 1

    def drop(self, secret_hash: str) -> None:
        """Cancel: the browser went back to the password step."""
        with self._db.write() as conn:
            conn.execute(
                delete(pending_signins).where(pending_signins.c.secret_hash == secret_hash)
            )
