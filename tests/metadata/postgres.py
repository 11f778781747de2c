"""The machine's PostgreSQL for tests: started if it is down, one fresh schema per test.

Never skipped: if the server is absent it is started with ``pg_ctlcluster``; if that
fails the test fails and says why.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

HOST, PORT, USER, DATABASE = "127.0.0.1", 5432, "postgres", "test"
_ready = False


def _connect(dbname: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=HOST, port=PORT, user=USER, dbname=dbname, autocommit=True, connect_timeout=3
    )


def _start_cluster() -> None:
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (/etc/postgresql is empty)")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
    )


def ensure_postgres() -> None:
    """Make sure the server answers and database ``test`` exists (once per session)."""
    global _ready  # noqa: PLW0603 - a once-per-process latch
    if _ready:
        return
    deadline = time.monotonic() + 60
    started = False
    while True:
        try:
            with _connect("postgres") as conn:
                if (
                    conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    is None
                ):
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')
            break
        except psycopg.OperationalError:
            if not started:
                _start_cluster()
                started = True
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    _ready = True


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A DSN whose search_path is a new, empty schema; the schema is dropped afterwards."""
    ensure_postgres()
    schema = f"hw_test_{secrets.token_hex(6)}"
    with _connect(DATABASE) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield (f"postgresql://{USER}@{HOST}:{PORT}/{DATABASE}?options=-csearch_path%3D{schema}")
    finally:
        with _connect(DATABASE) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
