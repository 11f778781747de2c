"""What only the SQLite backend has to get right: file modes, WAL, several processes."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from sqlalchemy import text

from hatchway.config.model import Config
from hatchway.metadata import MetadataStore, database_dsn
from hatchway.metadata.engine import normalize_dsn

WRITER = """
import sys
from hatchway.metadata import AuditEvent, MetadataStore
store = MetadataStore(sys.argv[1])
for i in range(25):
    store.accounts.create(f"p{sys.argv[2]}-{i}")
    store.audit.record(AuditEvent(event="user.add", outcome="success"))
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_and_wal(tmp_path: Path) -> None:
    db = tmp_path / "new" / "dir" / "hatchway.db"
    store = MetadataStore(f"sqlite:///{db}")
    try:
        store.accounts.create("alice")
        with store.db.engine.connect() as conn:  # keep a connection: the WAL stays
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 15000
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert mode(db) == 0o600
            wal = db.with_name("hatchway.db-wal")
            assert wal.exists()
            assert mode(wal) == 0o600
    finally:
        store.dispose()


def test_loose_file_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "hatchway.db"
    db.touch(mode=0o644)
    db.chmod(0o644)
    MetadataStore(f"sqlite:///{db}").dispose()
    assert mode(db) == 0o600


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'hatchway.db'}"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, dsn, str(n)], stderr=subprocess.PIPE)
        for n in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    store = MetadataStore(dsn)
    try:
        assert len(store.accounts.list()) == 100
        assert len(store.audit.list(limit=500)) == 100
    finally:
        store.dispose()


def test_database_dsn(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = Config.model_validate({"storage": {"filesystem": {"rootdirectory": str(root)}}})
    assert database_dsn(config) == f"sqlite:///{root / 'hatchway.db'}"
    assert database_dsn(Config()).endswith("/hatchway-data/hatchway.db")
    with_dsn = SimpleNamespace(database=SimpleNamespace(dsn="postgresql://db/x"))
    assert database_dsn(cast(Config, with_dsn)) == "postgresql://db/x"
    unset = SimpleNamespace(database=SimpleNamespace(dsn=None), storage=config.storage)
    assert database_dsn(cast(Config, unset)) == f"sqlite:///{root / 'hatchway.db'}"


def test_normalize_dsn() -> None:
    assert normalize_dsn("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_dsn("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_dsn("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_dsn("sqlite:///x.db") == "sqlite:///x.db"


def _open_and_write(path: str) -> str | None:
    from hatchway.metadata.engine import Database

    try:
        db = Database(f"sqlite:///{path}")
        with db.write() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        db.dispose()
    except Exception as exc:  # reported to the test, which names it
        return repr(exc)
    return None


def test_processes_opening_a_new_file_together_all_get_in(tmp_path: Path) -> None:
    """Workers starting together each switch a new file to WAL: SQLite refuses that at
    once ("database is locked", no busy wait) while another process holds the file, and a
    worker used to crash at start (CI: 1 round in ~50 of 4 processes)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        for round_ in range(60):
            path = str(tmp_path / f"{round_}.db")
            failures = [f for f in pool.map(_open_and_write, [path] * 4) if f]
            assert not failures, (round_, failures)
