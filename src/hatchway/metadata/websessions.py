"""The web UI's sign-in sessions (``web_sessions``).

Only the SHA-256 of the cookie's secret is stored, so the table cannot be used to sign in.
A session ends at ``expires_at`` (absolute), after ``idle`` without a request, or when
revoked (sign out, its owner ending it, a password change). Use is recorded at most once
per ``interval``, decided by the UPDATE's own WHERE clause as for access tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import OperationalError

from hatchway.metadata.engine import Database
from hatchway.metadata.records import utcnow
from hatchway.metadata.tables import web_sessions

TOUCH_INTERVAL = 60.0
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebSession:
    id: int
    subject: str
    backend: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    created_addr: str | None
    last_addr: str | None
    user_agent: str | None
    binding: str | None = field(default=None, repr=False)

    def active(self, idle: timedelta, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return self.revoked_at is None and now < self.expires_at and now - self.last_seen_at < idle


def _record(row: Any) -> WebSession:
    """A fetched row, or the inserted values (attribute access either way)."""
    return WebSession(
        id=row.id,
        subject=row.subject,
        backend=row.backend,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_seen_at=row.last_seen_at,
        revoked_at=row.revoked_at,
        created_addr=row.created_addr,
        last_addr=row.last_addr,
        user_agent=row.user_agent,
        binding=row.binding,
    )


def _cut(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


class WebSessionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        subject: str,
        *,
        backend: str,
        session_hash: str,
        expires_at: datetime,
        binding: str | None = None,
        address: str | None = None,
        user_agent: str | None = None,
    ) -> WebSession:
        now = utcnow()
        values = {
            "session_hash": session_hash,
            "subject": subject,
            "backend": backend,
            "binding": binding,
            "created_at": now,
            "expires_at": expires_at,
            "last_seen_at": now,
            "revoked_at": None,
            "created_addr": _cut(address, 64),
            "last_addr": _cut(address, 64),
            "user_agent": _cut(user_agent, 512),
        }
        with self._db.write() as conn:
            new_id = conn.execute(insert(web_sessions).values(**values)).inserted_primary_key
        assert new_id is not None
        return _record(_Row(id=int(new_id[0]), **values))

    def find(self, session_hash: str) -> WebSession | None:
        """The session with this hash, live or not (the caller checks :meth:`active`)."""
        with self._db.read() as conn:
            row = conn.execute(
                select(web_sessions).where(web_sessions.c.session_hash == session_hash)
            ).first()
        return _record(row) if row is not None else None

    def list(self, subject: str, *, idle: timedelta) -> list[WebSession]:
        """The subject's live sessions, newest first."""
        now = utcnow()
        with self._db.read() as conn:
            rows = conn.execute(
                select(web_sessions)
                .where(
                    web_sessions.c.subject == subject,
                    web_sessions.c.revoked_at.is_(None),
                    web_sessions.c.expires_at > now,
                    web_sessions.c.last_seen_at > now - idle,
                )
                .order_by(web_sessions.c.id.desc())
            ).all()
        return [_record(r) for r in rows]

    def touch(self, session_id: int, address: str | None, interval: float = TOUCH_INTERVAL) -> None:
        """Record a request (best effort: a busy database must not fail the page)."""
        now = utcnow()
        try:
            with self._db.write() as conn:
                conn.execute(
                    update(web_sessions)
                    .where(
                        web_sessions.c.id == session_id,
                        web_sessions.c.last_seen_at < now - timedelta(seconds=interval),
                    )
                    .values(last_seen_at=now, last_addr=_cut(address, 64))
                )
        except OperationalError as exc:
            log.warning("could not record use of web session %d: %s", session_id, exc.orig)

    def revoke(self, session_id: int, subject: str | None = None) -> bool:
        """End one session (of ``subject``, when given); False if there was no live one."""
        where = [web_sessions.c.id == session_id, web_sessions.c.revoked_at.is_(None)]
        if subject is not None:
            where.append(web_sessions.c.subject == subject)
        with self._db.write() as conn:
            done = conn.execute(update(web_sessions).where(*where).values(revoked_at=utcnow()))
        return done.rowcount > 0

    def revoke_subject(self, subject: str, *, keep: int | None = None) -> int:
        """End every live session of ``subject`` (but ``keep``); returns how many."""
        where = [web_sessions.c.subject == subject, web_sessions.c.revoked_at.is_(None)]
        if keep is not None:
            where.append(web_sessions.c.id != keep)
        with self._db.write() as conn:
            done = conn.execute(update(web_sessions).where(*where).values(revoked_at=utcnow()))
        return int(done.rowcount)

    def purge(self, before: datetime) -> int:
        """Forget sessions that ended (expired or revoked) before ``before``."""
        with self._db.write() as conn:
            done = conn.execute(
                delete(web_sessions).where(
                    or_(web_sessions.c.expires_at < before, web_sessions.c.revoked_at < before)
                )
            )
        return int(done.rowcount)


class _Row:
    """Attribute access over a dict, so a freshly inserted row reads like a fetched one."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


__all__ = ["WebSession", "WebSessionStore"]
