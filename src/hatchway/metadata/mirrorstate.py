"""The pull-through mirror's shared state: tag checks and last pulls, in the database every
worker and replica of a deployment shares (SQLite on one machine, PostgreSQL across).

- A tag checked upstream by one worker is not checked again by another within the
  ``freshness`` interval: the check (time and the digest it found) is a row here.
- Cached manifests and blobs carry the time they were last pulled through the mirror;
  the ``ttl`` purge removes those not pulled for longer.

Synchronous (the server calls it through ``asyncio.to_thread``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from hatchway.metadata.engine import Database
from hatchway.metadata.tables import mirror_pulls, mirror_tag_checks

_C = mirror_tag_checks.c
_P = mirror_pulls.c
Kind = Literal["manifest", "blob"]


@dataclass(frozen=True, slots=True)
class TagCheck:
    digest: str
    checked_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class Pulled:
    repository: str
    digest: str
    kind: Kind
    pulled_at: float


class MirrorStateStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    # --- tag freshness -------------------------------------------------------------

    def tag_check(self, repository: str, tag: str) -> TagCheck | None:
        with self._db.read() as conn:
            row = conn.execute(
                select(_C.digest, _C.checked_at).where(
                    (_C.repository == repository) & (_C.tag == tag)
                )
            ).first()
        return None if row is None else TagCheck(row.digest, float(row.checked_at))

    def record_tag_check(self, repository: str, tag: str, digest: str, at: float) -> None:
        stmt = self._insert(mirror_tag_checks).values(
            repository=repository, tag=tag, digest=digest, checked_at=at
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[_C.repository, _C.tag],
            set_={"digest": stmt.excluded.digest, "checked_at": stmt.excluded.checked_at},
        )
        with self._db.write() as conn:
            conn.execute(stmt)

    # --- last pulls (ttl) -----------------------------------------------------------

    def record_pulls(self, pulls: list[Pulled]) -> None:
        """Upsert last-pulled times (a later time wins)."""
        if not pulls:
            return
        with self._db.write() as conn:
            for p in pulls:
                stmt = self._insert(mirror_pulls).values(
                    repository=p.repository, digest=p.digest, kind=p.kind, pulled_at=p.pulled_at
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=[_P.repository, _P.digest],
                    set_={"pulled_at": stmt.excluded.pulled_at, "kind": stmt.excluded.kind},
                    where=_P.pulled_at < stmt.excluded.pulled_at,
                )
                conn.execute(stmt)

    def not_pulled_since(self, before: float, limit: int = 500) -> list[Pulled]:
        """Cached items last pulled before ``before``, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(_P.repository, _P.digest, _P.kind, _P.pulled_at)
                .where(_P.pulled_at < before)
                .order_by(_P.pulled_at)
                .limit(limit)
            ).all()
        return [Pulled(r.repository, r.digest, r.kind, float(r.pulled_at)) for r in rows]

    def forget(self, item: Pulled, tags: list[str]) -> None:
        """Drop an expired item's row (unless pulled again meanwhile) and its tags' checks."""
        with self._db.write() as conn:
            conn.execute(
                delete(mirror_pulls).where(
                    (_P.repository == item.repository)
                    & (_P.digest == item.digest)
                    & (_P.pulled_at <= item.pulled_at)
                )
            )
            if tags:
                conn.execute(
                    delete(mirror_tag_checks).where(
                        tuple_(_C.repository, _C.tag).in_([(item.repository, t) for t in tags])
                    )
                )
