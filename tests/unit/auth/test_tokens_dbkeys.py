"""Signing keys in a shared PostgreSQL database: what one replica makes, rotates or
retires, every other one sees; keys already on disk are adopted; no files are written."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hatchway.auth.tokens import KeyStore, TokenIssuer, TokenVerifier
from hatchway.auth.tokens.dbkeys import DatabaseKeys, key_backend
from hatchway.auth.tokens.keys import KeyFiles
from hatchway.cli.commands import keys as keys_cli
from hatchway.config.model import Config
from tests.metadata.postgres import fresh_schema
from tests.support.server import free_port
from tests.unit.auth.tokens_support import AUD, ISS, PULL

_opened: list[KeyStore] = []


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_schema() as url:
        try:
            yield url
        finally:
            while _opened:
                backend = _opened.pop().backend
                if isinstance(backend, DatabaseKeys):
                    backend.close()


def config_for(dsn: str, data: Path) -> Config:
    return Config.model_validate(
        {"storage": {"filesystem": {"rootdirectory": str(data)}}, "database": {"dsn": dsn}}
    )


def replica(dsn: str, data: Path) -> KeyStore:
    config = config_for(dsn, data)
    store = KeyStore(data / "keys", check_interval=0, backend=key_backend(config))
    _opened.append(store)
    return store


def test_replicas_share_keys_through_the_database(dsn: str, tmp_path: Path) -> None:
    a, b = replica(dsn, tmp_path / "a"), replica(dsn, tmp_path / "b")
    assert isinstance(a.backend, DatabaseKeys)
    first = a.signing_key()
    assert b.signing_key().kid == first.kid
    token = TokenIssuer(a, ISS).mint("alice", AUD, PULL).token
    assert TokenVerifier(b, ISS, AUD).verify(token).subject == "alice"
    # Rotation on one reaches the other; the old key still verifies in the overlap.
    rotated = b.rotate()
    assert a.signing_key().kid == rotated.kid
    assert TokenVerifier(a, ISS, AUD).verify(token).subject == "alice"
    fresh = TokenIssuer(a, ISS).mint("bob", AUD, PULL).token
    assert TokenVerifier(b, ISS, AUD).verify(fresh).subject == "bob"
    # Retired at once on one, refused by the other.
    a.retire_key(first.kid, immediately=True)
    assert first.kid not in b.verification_keys()
    assert json.dumps(b.jwks()).count('"kid"') == 1
    # Nothing of it is on either replica's disk.
    assert not list(tmp_path.glob("**/*.pem"))


def test_replicas_starting_together_make_one_key(dsn: str, tmp_path: Path) -> None:
    stores = [replica(dsn, tmp_path / f"r{i}") for i in range(6)]
    barrier = threading.Barrier(len(stores))
    kids: list[str] = []

    def start(store: KeyStore) -> None:
        barrier.wait()
        kids.append(store.signing_key().kid)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1
    assert len(stores[0].inventory()) == 1


def test_keys_on_disk_are_adopted_once(dsn: str, tmp_path: Path) -> None:
    data = tmp_path / "old"
    on_disk = KeyStore(data / "keys").signing_key()
    token = TokenIssuer(KeyStore(data / "keys"), ISS).mint("carol", AUD, PULL).token
    moved = replica(dsn, data)
    assert moved.signing_key().kid == on_disk.kid
    assert TokenVerifier(replica(dsn, tmp_path / "other"), ISS, AUD).verify(token)
    # Adoption happens only into an empty table: a second directory adds nothing.
    KeyStore(tmp_path / "third" / "keys").signing_key()
    assert [k.kid for k in replica(dsn, tmp_path / "third").inventory()] == [on_disk.kid]


def test_sqlite_keeps_keys_in_files(tmp_path: Path) -> None:
    config = Config.model_validate({"storage": {"filesystem": {"rootdirectory": str(tmp_path)}}})
    assert isinstance(key_backend(config), KeyFiles)


def test_an_unusable_row_is_ignored(dsn: str, tmp_path: Path) -> None:
    store = replica(dsn, tmp_path)
    good = store.signing_key()
    assert isinstance(store.backend, DatabaseKeys)
    store.backend.store("20200101T000000000000Z_bogus.pem", b"not a key")
    store.rotate()
    assert good.kid in store.verification_keys()
    assert "bogus" not in json.dumps(store.jwks())


def test_keys_cli_names_an_unreachable_database(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}\n"
        f"database:\n  dsn: postgresql://postgres@127.0.0.1:{free_port()}/x\n"
    )
    result = CliRunner().invoke(keys_cli.app, ["rotate", "--config", str(config)])
    assert result.exit_code == 1
    assert "cannot open the key database" in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("**/*.pem"))
