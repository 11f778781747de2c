"""Token signing keys in the shared PostgreSQL database, so replicas share them.

With ``database.dsn`` on PostgreSQL, several replicas (on several machines) serve one
registry: a token one of them issues must verify on all, and ``hatchway keys rotate`` run
anywhere must reach all. The keys are then rows of ``token_signing_keys`` rather than
files in each replica's local directory; :class:`~hatchway.auth.tokens.keys.KeyStore`
works on them exactly as on files (the row's name is the file name, so the activation
time is in it), re-reading the list at most once per ``check_interval``. Changes take a
session advisory lock, so replicas starting together make one key, not one each.

Keys already in the local directory when the table is first used (a registry moving to
PostgreSQL) are adopted, so tokens they signed keep verifying. The private keys are in
the database as they were in files: whoever can read the database can sign tokens, so
it deserves the same protection as the key directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import delete, insert, select, text

from hatchway.auth.tokens import keyfile
from hatchway.auth.tokens.keyfile import SigningKey
from hatchway.auth.tokens.keys import KeyBackend, KeyFiles, key_directory
from hatchway.config.model import Config
from hatchway.metadata.engine import Database, database_dsn
from hatchway.metadata.tables import token_signing_keys

_KEYS_LOCK = 0x68770002  # pg_advisory_lock key for changing the keys ("hw" + 2)


class DatabaseKeys:
    """A :class:`KeyBackend` on the ``token_signing_keys`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def close(self) -> None:
        """Drop the pooled connections."""
        self._db.dispose()

    def names(self) -> list[str]:
        with self._db.read() as conn:
            return [str(n) for n in conn.scalars(select(token_signing_keys.c.name))]

    def load(self, name: str) -> SigningKey | None:
        with self._db.read() as conn:
            pem = conn.scalar(
                select(token_signing_keys.c.pem).where(token_signing_keys.c.name == name)
            )
        return None if pem is None else keyfile.from_bytes(name, pem.encode("ascii"))

    def store(self, name: str, data: bytes) -> None:
        with self._db.write() as conn:
            conn.execute(insert(token_signing_keys).values(name=name, pem=data.decode("ascii")))

    def remove(self, names: list[str]) -> None:
        if names:
            with self._db.write() as conn:
                conn.execute(delete(token_signing_keys).where(token_signing_keys.c.name.in_(names)))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        engine = self._db.engine.execution_options(isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _KEYS_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _KEYS_LOCK})

    def adopt(self, files: KeyFiles) -> list[str]:
        """Copy keys from a key directory if the table has none yet; their names."""
        with self.locked():
            if self.names():
                return []
            adopted = []
            for name in sorted(files.names()):
                path = Path(files.directory) / name
                if keyfile.load(path) is not None:
                    self.store(name, path.read_bytes())
                    adopted.append(name)
            return adopted


def key_backend(config: Config) -> KeyBackend:
    """The shared database when ``database.dsn`` is PostgreSQL, else the key directory."""
    files = KeyFiles(key_directory(config))
    db = Database(database_dsn(config))
    if db.dialect != "postgresql":
        db.dispose()
        return files
    db.create_schema()
    shared = DatabaseKeys(db)
    shared.adopt(files)
    return shared
