"""``hatchway gc`` runs, recorded by the gc process so every server's ``/metrics`` shows
them (gc runs apart from the servers, possibly on another machine of the same database)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, insert, select

from hatchway.metadata.engine import Database
from hatchway.metadata.tables import gc_runs

_T = gc_runs.c


@dataclass(frozen=True, slots=True)
class GcTotals:
    """Sums over every recorded run, and the latest run."""

    runs: dict[str, int]  # outcome -> runs
    duration: float  # every run's, dry runs too
    # Real (not dry) runs only:
    blobs_deleted: int
    bytes_freed: int
    last_finished_at: float | None
    last_duration: float | None


class GcRunStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        *,
        finished_at: float,
        duration: float,
        outcome: str,
        dry_run: bool,
        blobs_deleted: int,
        bytes_freed: int,
    ) -> None:
        with self._db.write() as conn:
            conn.execute(
                insert(gc_runs).values(
                    finished_at=finished_at,
                    duration=duration,
                    outcome=outcome[:20],
                    dry_run=dry_run,
                    blobs_deleted=blobs_deleted,
                    bytes_freed=bytes_freed,
                )
            )

    def totals(self) -> GcTotals:
        with self._db.read() as conn:
            runs = {
                row.outcome: int(row.n)
                for row in conn.execute(
                    select(_T.outcome, func.count().label("n")).group_by(_T.outcome)
                )
            }
            duration = conn.execute(select(func.coalesce(func.sum(_T.duration), 0.0))).scalar()
            sums = conn.execute(
                select(
                    func.coalesce(func.sum(_T.blobs_deleted), 0),
                    func.coalesce(func.sum(_T.bytes_freed), 0),
                ).where(_T.dry_run.is_(False))
            ).one()
            last = conn.execute(
                select(_T.finished_at, _T.duration).order_by(_T.id.desc()).limit(1)
            ).first()
        return GcTotals(
            runs,
            float(duration or 0.0),
            int(sums[0]),
            int(sums[1]),
            float(last.finished_at) if last is not None else None,
            float(last.duration) if last is not None else None,
        )
