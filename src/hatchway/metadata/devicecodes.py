"""OAuth2 device authorization requests (``device_codes``; RFC 8628).

Only SHA-256s of the device code (the client's secret) and of the user code (what a
person types) are stored. Every change of state is one conditional ``UPDATE`` whose
``WHERE`` says what must still hold (pending and unexpired to decide, approved to
redeem, the interval passed to poll), so two workers or replicas racing over one code
agree on a single winner without locks: a code is approved or denied once and exchanged
for a token once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hatchway.metadata.engine import Database
from hatchway.metadata.records import ConflictError, utcnow
from hatchway.metadata.tables import device_codes

_T = device_codes.c
PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
USED = "used"
SLOW_DOWN_STEP = 5  # RFC 8628 section 3.5: each slow_down adds 5 seconds


@dataclass(frozen=True, slots=True)
class DeviceCode:
    id: int
    client_id: str
    scope: str
    state: str
    created_at: datetime
    expires_at: datetime
    interval: int
    created_addr: str | None
    user_agent: str | None
    subject: str | None
    backend: str | None
    decided_at: datetime | None
    user_hash: str = field(repr=False, default="")

    def expired(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) >= self.expires_at


def _record(row: Any) -> DeviceCode:
    return DeviceCode(
        id=row.id,
        client_id=row.client_id,
        scope=row.scope,
        state=row.state,
        created_at=row.created_at,
        expires_at=row.expires_at,
        interval=row.interval,
        created_addr=row.created_addr,
        user_agent=row.user_agent,
        subject=row.subject,
        backend=row.backend,
        decided_at=row.decided_at,
        user_hash=row.user_hash,
    )


def _cut(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


class DeviceCodeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        *,
        device_hash: str,
        user_hash: str,
        client_id: str,
        scope: str,
        expires_at: datetime,
        interval: int,
        address: str | None,
        user_agent: str | None,
    ) -> int:
        """A new pending request; ConflictError if either hash is taken already."""
        values = {
            "device_hash": device_hash,
            "user_hash": user_hash,
            "client_id": client_id[:128],
            "scope": scope[:1024],
            "state": PENDING,
            "created_at": utcnow(),
            "expires_at": expires_at,
            "interval": interval,
            "polled_at": None,
            "created_addr": _cut(address, 64),
            "user_agent": _cut(user_agent, 512),
        }
        try:
            with self._db.write() as conn:
                made = conn.execute(insert(device_codes).values(**values)).inserted_primary_key
        except IntegrityError:
            raise ConflictError("a device or user code with this hash exists") from None
        assert made is not None
        return int(made[0])

    def _find(self, column: Any, value: str) -> DeviceCode | None:
        with self._db.read() as conn:
            row = conn.execute(select(device_codes).where(column == value)).first()
        return _record(row) if row is not None else None

    def by_device(self, device_hash: str) -> DeviceCode | None:
        return self._find(_T.device_hash, device_hash)

    def by_user(self, user_hash: str) -> DeviceCode | None:
        return self._find(_T.user_hash, user_hash)

    def decide(self, code_id: int, *, approve: bool, subject: str, backend: str) -> bool:
        """Approve or deny a request that is still pending and unexpired; False if it
        is not (decided already, by this person or another, or expired)."""
        now = utcnow()
        with self._db.write() as conn:
            done = conn.execute(
                update(device_codes)
                .where(_T.id == code_id, _T.state == PENDING, _T.expires_at > now)
                .values(
                    state=APPROVED if approve else DENIED,
                    subject=subject[:128],
                    backend=backend[:32],
                    decided_at=now,
                )
            )
        return done.rowcount == 1

    def poll(self, code_id: int, now: float | None = None) -> bool:
        """Record a poll. True if the client waited its interval since the last one;
        False (slow down) otherwise, and its interval grows by 5 seconds."""
        now = time.time() if now is None else now
        with self._db.write() as conn:
            done = conn.execute(
                update(device_codes)
                .where(
                    _T.id == code_id,
                    or_(_T.polled_at.is_(None), _T.polled_at <= now - _T.interval),
                )
                .values(polled_at=now)
            )
            if done.rowcount == 1:
                return True
            conn.execute(
                update(device_codes)
                .where(_T.id == code_id)
                .values(polled_at=now, interval=_T.interval + SLOW_DOWN_STEP)
            )
        return False

    def redeem(self, code_id: int) -> bool:
        """Mark an approved request used; True for the one caller that did."""
        with self._db.write() as conn:
            done = conn.execute(
                update(device_codes)
                .where(_T.id == code_id, _T.state == APPROVED, _T.expires_at > utcnow())
                .values(state=USED)
            )
        return done.rowcount == 1

    def purge(self, before: datetime) -> int:
        """Forget requests that expired before ``before``."""
        with self._db.write() as conn:
            done = conn.execute(delete(device_codes).where(_T.expires_at < before))
        return int(done.rowcount)


__all__ = [
    "APPROVED",
    "DENIED",
    "PENDING",
    "USED",
    "DeviceCode",
    "DeviceCodeStore",
]
