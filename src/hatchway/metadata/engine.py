"""Engines and transactions that stay safe when several processes share one database.

SQLite (the default, ``<data dir>/hatchway.db``): the file is created 0600 before SQLite
opens it (its -wal/-shm files inherit that mode); WAL lets readers run beside the one
writer; ``busy_timeout`` makes a second writer wait instead of failing; and writes start
with ``BEGIN IMMEDIATE`` so two processes never both hold a read snapshot they then try
to upgrade (SQLite would fail one of them at once, without waiting). PostgreSQL: plain
transactions; schema creation takes an advisory lock so concurrent first starts don't race.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from hatchway.config.model import Config
from hatchway.metadata.tables import metadata

BUSY_TIMEOUT_MS = 15_000
_SCHEMA_LOCK = 0x68770001  # pg_advisory_xact_lock key for create_all ("hw" + 1)
log = logging.getLogger("hatchway.metadata")


def database_dsn(config: Config) -> str:
    """The configured DSN (``database.dsn``), else SQLite in the storage root directory."""
    database = getattr(config, "database", None)
    dsn = getattr(database, "dsn", None) if database is not None else None
    if isinstance(dsn, str) and dsn:
        return dsn
    return f"sqlite:///{Path(config.storage.local_directory()).absolute() / 'hatchway.db'}"


def normalize_dsn(dsn: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3 (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn


def _create_private_file(path: Path) -> None:
    """Create the SQLite file 0600 (and its directory, 0700) before SQLite creates it 0644."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return
    os.close(fd)


def _use_wal(cur: Any) -> None:
    """Switch the file to WAL (persistent: later connections find it so and change nothing).

    Changing the journal mode needs the file to itself, and SQLite answers "database is
    locked" at once, without the busy handler, while another process opens or recovers
    the WAL (two workers starting together): ask again until the busy timeout is spent."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
        else:
            return


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    memory = database in ("", ":memory:")
    if memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        _create_private_file(Path(database))
        engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not memory:
            _use_wal(cur)
            # WAL + NORMAL: a commit is in the WAL file when it returns, so it survives
            # the process being killed (kill -9); the WAL is synced at checkpoints, not
            # at each commit, so a power cut may lose the last commits (README:
            # "Performance"). Storage, not the database, holds what a push made.
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _add_missing_columns(conn: Connection) -> None:
    """Add columns that tables gained after a database was created (all nullable, so
    existing rows stay valid): ``create_all`` makes missing tables, not missing columns."""
    inspector = inspect(conn)
    preparer = conn.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RuntimeError(f"cannot add NOT NULL column {table.name}.{column.name}")
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(
                text(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD COLUMN {preparer.format_column(column)} {kind}"
                )
            )


class Database:
    """An engine plus the two kinds of transaction the stores use."""

    def __init__(self, dsn: str) -> None:
        url = normalize_dsn(dsn)
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # Run after a commit that revoked what a process may have cached (an access
        # token, an account's state): shared/revocations.py tells the other replicas.
        self.revocation_hooks: list[Callable[[str], None]] = []

    def revoked(self, what: str) -> None:
        """Tell the hooks that ``what`` ("token", "account") was revoked (committed)."""
        for hook in self.revocation_hooks:
            try:
                hook(what)
            except Exception:  # the revocation stands; caches expire on their own
                log.warning("could not announce a revocation (%s)", what, exc_info=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Reads: a snapshot on SQLite; on PostgreSQL autocommit, which saves the BEGIN and
        COMMIT round trips (READ COMMITTED gives no snapshot across statements anyway)."""
        if self.dialect == "sqlite":
            with self.engine.connect() as conn, conn.begin():
                yield conn
        else:
            with self._autocommit.connect() as conn:
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that holds SQLite's write lock from its start; commits on success."""
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def create_schema(self) -> None:
        """Create missing tables; serialized across processes."""
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            metadata.create_all(conn)
            _add_missing_columns(conn)

    def dispose(self) -> None:
        """Drop pooled connections (call in a child after fork, or at shutdown)."""
        self.engine.dispose()
