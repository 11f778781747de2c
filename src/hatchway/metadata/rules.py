"""Access rules kept in the database, so an operator can change them without a restart.

The store keeps each rule as given (one ``access:`` entry as JSON); checking it is the
caller's job (``auth.policy.load_rule``), since this package never imports ``auth``.
Positions stay dense (1..n) and every change bumps one revision counter in the same
transaction: a server learns whether anything changed from one single-row read.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, text, update

from hatchway.metadata.engine import Database
from hatchway.metadata.records import AccessRuleRecord, MetadataError, NotFoundError, utcnow
from hatchway.metadata.tables import access_rule_revision, access_rules

_RULES_LOCK = 0x68770002  # pg_advisory_xact_lock key for rule changes ("hw" + 2)
_ORDER = (access_rules.c.position, access_rules.c.id)


def _record(row: Row[Any]) -> AccessRuleRecord:
    return AccessRuleRecord(
        id=row.id,
        position=row.position,
        rule=dict(row.rule),
        created_at=row.created_at,
        comment=row.comment,
    )


class AccessRuleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def list(self) -> builtins.list[AccessRuleRecord]:
        """Every rule in the order it applies."""
        with self._db.read() as conn:
            return [_record(r) for r in conn.execute(select(access_rules).order_by(*_ORDER))]

    def get(self, rule_id: int) -> AccessRuleRecord:
        with self._db.read() as conn:
            row = conn.execute(select(access_rules).where(access_rules.c.id == rule_id)).first()
        if row is None:
            raise NotFoundError(f"no access rule {rule_id}")
        return _record(row)

    def revision(self) -> int:
        """A number that changes with every add, delete or move (0 before the first)."""
        with self._db.read() as conn:
            found = conn.scalar(select(access_rule_revision.c.revision))
        return int(found or 0)

    def add(
        self, rule: Mapping[str, Any], *, comment: str | None = None, position: int | None = None
    ) -> AccessRuleRecord:
        """Store ``rule`` at ``position`` (1-based; default: last, so it applies last)."""
        with self._db.write() as conn:
            ids = self._locked_ids(conn)
            new_id = conn.execute(
                insert(access_rules)
                .values(
                    position=len(ids) + 1,
                    rule=dict(rule),
                    created_at=utcnow(),
                    comment=comment[:500] if comment else None,
                )
                .returning(access_rules.c.id)
            ).scalar_one()
            ids.insert(self._index(position, len(ids) + 1), int(new_id))
            self._renumber(conn, ids)
        return self.get(int(new_id))

    def delete(self, rule_id: int) -> AccessRuleRecord:
        """Remove a rule; returns what it was (for the audit trail)."""
        with self._db.write() as conn:
            ids = self._locked_ids(conn)
            row = conn.execute(select(access_rules).where(access_rules.c.id == rule_id)).first()
            if row is None:
                raise NotFoundError(f"no access rule {rule_id}")
            conn.execute(delete(access_rules).where(access_rules.c.id == rule_id))
            ids.remove(rule_id)
            self._renumber(conn, ids)
        return _record(row)

    def move(self, rule_id: int, position: int) -> AccessRuleRecord:
        with self._db.write() as conn:
            ids = self._locked_ids(conn)
            if rule_id not in ids:
                raise NotFoundError(f"no access rule {rule_id}")
            ids.remove(rule_id)
            ids.insert(self._index(position, len(ids) + 1), rule_id)
            self._renumber(conn, ids)
        return self.get(rule_id)

    @staticmethod
    def _index(position: int | None, last: int) -> int:
        if position is None:
            return last - 1
        if not 1 <= position <= last:
            raise MetadataError(f"position {position} is out of range: expected 1 to {last}")
        return position - 1

    def _locked_ids(self, conn: Connection) -> builtins.list[int]:
        """The rule ids in order, read under a lock that serializes rule changes.

        SQLite's write transaction already holds the database lock; PostgreSQL takes an
        advisory lock so two concurrent changes cannot both renumber from the same view.
        """
        if self._db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _RULES_LOCK})
        return [int(i) for i in conn.scalars(select(access_rules.c.id).order_by(*_ORDER))]

    @staticmethod
    def _renumber(conn: Connection, ids: builtins.list[int]) -> None:
        for position, rule_id in enumerate(ids, start=1):
            conn.execute(
                update(access_rules)
                .where(access_rules.c.id == rule_id, access_rules.c.position != position)
                .values(position=position)
            )
        bumped = conn.execute(
            update(access_rule_revision)
            .where(access_rule_revision.c.id == 1)
            .values(revision=access_rule_revision.c.revision + 1)
        )
        if bumped.rowcount == 0:  # the first change ever (serialized by the lock above)
            conn.execute(insert(access_rule_revision).values(id=1, revision=1))
