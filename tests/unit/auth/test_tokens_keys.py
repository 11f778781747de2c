"""Signing keys on disk: modes, workers sharing a directory, rotation, JWKS, `hatchway keys`."""

from __future__ import annotations

import json
import multiprocessing
import re
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from typer.testing import CliRunner

from hatchway.auth.tokens import (
    KeyState,
    KeyStore,
    TokenIssuer,
    TokenVerifier,
    thumbprint,
)
from hatchway.cli.commands import keys as keys_cli
from tests.unit.auth.tokens_support import (
    AUD,
    ISS,
    PULL,
    SPKI,
    rejected,
)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


@pytest.fixture
def issuer(store: KeyStore) -> TokenIssuer:
    return TokenIssuer(store, ISS)


# -- keys on disk -----------------------------------------------------------------------------


def test_key_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    key = KeyStore(directory).signing_key()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert key.path.parent == directory
    assert b"PRIVATE KEY" in key.path.read_bytes()
    assert "private_key" not in repr(key)


def test_two_stores_on_one_directory_agree(tmp_path: Path) -> None:
    first, second = KeyStore(tmp_path / "k"), KeyStore(tmp_path / "k")
    assert first.signing_key().kid == second.signing_key().kid
    assert len(list((tmp_path / "k").glob("*.pem"))) == 1


def test_concurrent_first_start_threads_make_one_key(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    kids: list[str] = []

    def start() -> None:
        store = KeyStore(tmp_path / "k")
        barrier.wait()
        kids.append(store.signing_key().kid)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(kids)) == 1
    assert len(list((tmp_path / "k").glob("*.pem"))) == 1


def _worker_start(directory: str, go: Any, out: Any) -> None:
    store = KeyStore(Path(directory))
    go.wait()
    out.put(store.signing_key().kid)


def test_concurrent_first_start_processes_make_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_worker_start, args=(str(tmp_path / "k"), go, out)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    go.set()
    kids = {out.get(timeout=30) for _ in procs}
    for p in procs:
        p.join(timeout=30)
    assert len(kids) == 1
    assert len(list((tmp_path / "k").glob("*.pem"))) == 1


def test_unreadable_key_file_is_skipped_without_its_content(
    store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    kid = store.signing_key().kid
    (store.directory / "20200101T000000000000Z_bogus.pem").write_text("SECRET-MATERIAL")
    assert set(KeyStore(store.directory).verification_keys()) == {kid}
    assert "bogus" in caplog.text
    assert "SECRET-MATERIAL" not in caplog.text


def test_key_directory_follows_the_storage_root(tmp_path: Path) -> None:
    from hatchway.auth.tokens import key_directory
    from hatchway.config.model import Config

    config = Config.model_validate({"storage": {"filesystem": {"rootdirectory": str(tmp_path)}}})
    assert key_directory(config) == tmp_path / "keys"
    with pytest.raises(ValueError, match="inmemory"):
        key_directory(Config.model_validate({"storage": {"inmemory": {}}}))


# -- rotation and retirement ------------------------------------------------------------------


def test_rotation_keeps_old_tokens_valid(store: KeyStore, issuer: TokenIssuer) -> None:
    other = KeyStore(store.directory)  # a second worker, already loaded
    other_verifier = TokenVerifier(other, ISS, AUD)
    old = issuer.mint("a", AUD, PULL).token
    old_kid = store.signing_key().kid
    assert other.signing_key().kid == old_kid

    new_key = store.rotate()
    new = issuer.mint("a", AUD, PULL).token
    assert jwt.get_unverified_header(new)["kid"] == new_key.kid != old_kid
    verifier = TokenVerifier(store, ISS, AUD)
    assert verifier.verify(old).key_id == old_kid
    assert verifier.verify(new).key_id == new_key.kid
    # The other worker accepts the new kid at once (an unknown kid rereads the listing)...
    assert other_verifier.verify(new).key_id == new_key.kid
    assert other_verifier.verify(old).key_id == old_kid
    # ...and, having reread the listing, signs with the new key too.
    assert other.signing_key().kid == new_key.kid
    assert set(other.verification_keys()) == {old_kid, new_key.kid}
    assert {k.kid: k.state for k in other.inventory()} == {
        old_kid: KeyState.VERIFYING,
        new_key.kid: KeyState.SIGNING,
    }


def test_listing_is_reread_at_most_once_per_interval(tmp_path: Path) -> None:
    a = KeyStore(tmp_path / "k")
    b = KeyStore(tmp_path / "k", check_interval=0.2)
    first = b.signing_key().kid
    second = a.rotate().kid
    assert b.signing_key().kid == first  # cached: no directory read on the hot path
    time.sleep(0.25)
    assert b.signing_key().kid == second


def test_retirement_after_overlap(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "k", overlap=0)
    issuer = TokenIssuer(store, ISS)
    old = issuer.mint("a", AUD, []).token
    old_key = store.signing_key()
    store.rotate()  # overlap 0: the old key is retired at once, and removed by rotate
    assert not old_key.path.exists()
    assert rejected(TokenVerifier(store, ISS, AUD), old) == "token is signed by an unknown key"


def test_retire_keeps_keys_inside_the_overlap(store: KeyStore) -> None:
    old = store.signing_key()
    new = store.rotate()
    assert store.retire() == []
    assert {k.kid for k in store.inventory()} == {old.kid, new.kid}
    assert store.retire_before(datetime.now(UTC) + timedelta(seconds=1)) == [old.kid]
    assert [k.kid for k in store.inventory()] == [new.kid]  # the signing key is never retired
    assert set(store.verification_keys()) == {new.kid}


def test_pending_key_is_published_before_it_signs(store: KeyStore) -> None:
    current = store.signing_key()
    pending = store.rotate(activate_at=datetime.now(UTC) + timedelta(hours=1))
    assert store.signing_key().kid == current.kid
    assert {k.kid: k.state for k in store.inventory()}[pending.kid] is KeyState.PENDING
    entries: list[dict[str, Any]] = store.jwks()["keys"]  # type: ignore[assignment]
    assert pending.kid in {k["kid"] for k in entries}
    assert len(x509.load_pem_x509_certificates(store.certificate_bundle().encode())) == 2


def test_retire_the_signing_key_now_hands_over_and_trusts_it_no_more(
    store: KeyStore, issuer: TokenIssuer
) -> None:
    """A leaked key: a new key takes over signing, and the old one verifies nothing."""
    other = KeyStore(store.directory, check_interval=0)  # a running worker
    other_verifier = TokenVerifier(other, ISS, AUD)
    leaked = store.signing_key()
    signed = issuer.mint("a", AUD, PULL).token
    assert other_verifier.verify(signed).key_id == leaked.kid
    before = other.revision()
    successor = store.retire_key(leaked.kid, immediately=True)
    assert successor is not None
    assert successor.kid != leaked.kid
    assert not leaked.path.exists()
    assert other.revision() != before  # caches of verified tokens must check them again
    assert rejected(other_verifier, signed) == "token is signed by an unknown key"
    assert other.signing_key().kid == successor.kid
    published: list[dict[str, Any]] = other.jwks()["keys"]  # type: ignore[assignment]
    assert leaked.kid not in {k["kid"] for k in published}
    fresh = issuer.mint("a", AUD, PULL).token
    assert other_verifier.verify(fresh).key_id == successor.kid


def test_retire_without_now_keeps_verifying_through_the_overlap(
    store: KeyStore, issuer: TokenIssuer
) -> None:
    current = store.signing_key()
    signed = issuer.mint("a", AUD, PULL).token
    successor = store.retire_key(current.kid, immediately=False)
    assert successor is not None
    states = {k.kid: k.state for k in store.inventory()}
    assert states == {current.kid: KeyState.VERIFYING, successor.kid: KeyState.SIGNING}
    assert TokenVerifier(store, ISS, AUD).verify(signed).key_id == current.kid
    # A key that no longer signs needs no successor; --now just removes it.
    assert store.retire_key(current.kid, immediately=True) is None
    assert [k.kid for k in store.inventory()] == [successor.kid]
    with pytest.raises(ValueError, match="no signing key 'nope'"):
        store.retire_key("nope", immediately=True)


# -- JWKS and the certificate bundle ----------------------------------------------------------


def test_jwks_shape(store: KeyStore) -> None:
    store.signing_key()
    store.rotate()
    document = store.jwks()
    assert set(document) == {"keys"}
    entries: list[dict[str, Any]] = document["keys"]  # type: ignore[assignment]
    assert len(entries) == 2
    live = store.verification_keys()
    for entry in entries:
        assert set(entry) == {"kty", "crv", "x", "y", "kid", "alg", "use", "x5c"}
        assert (entry["kty"], entry["crv"], entry["alg"], entry["use"]) == (
            "EC",
            "P-256",
            "ES256",
            "sig",
        )
        kid = str(entry["kid"])
        key = jwt.PyJWK(entry).key
        assert key.public_bytes(*SPKI) == live[kid].public_bytes(*SPKI)
        assert thumbprint(key) == kid
    json.dumps(document)


def test_certificate_bundle_is_pem_certificates_of_live_keys(store: KeyStore) -> None:
    store.signing_key()
    store.rotate()
    bundle = store.certificate_bundle()
    assert re.fullmatch(
        r"(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n)+", bundle
    )
    certs = x509.load_pem_x509_certificates(bundle.encode())
    assert {thumbprint(c.public_key()) for c in certs} == set(store.verification_keys())  # type: ignore[arg-type]


# -- hatchway keys ----------------------------------------------------------------------------


def test_cli_cert_rotate_list(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data", str(tmp_path)]
    listed = runner.invoke(keys_cli.app, ["list", *data])
    assert listed.exit_code == 0
    assert "no signing keys yet" in listed.output
    cert = runner.invoke(keys_cli.app, ["cert", *data])
    assert cert.exit_code == 0, cert.output
    assert len(x509.load_pem_x509_certificates(cert.output.encode())) == 1
    store = KeyStore(tmp_path / "keys")
    first = store.signing_key().kid
    rotated = runner.invoke(keys_cli.app, ["rotate", *data])
    assert rotated.exit_code == 0, rotated.output
    new_kid = rotated.output.strip()
    assert KeyStore(tmp_path / "keys").signing_key().kid == new_kid != first
    listed = runner.invoke(keys_cli.app, ["list", *data])
    rows = {line.split()[0]: line for line in listed.output.splitlines()[1:]}
    assert "ES256" in rows[first]
    assert "verifying" in rows[first]
    assert "signing" in rows[new_kid]
    bundle = runner.invoke(keys_cli.app, ["cert", *data]).output
    assert len(x509.load_pem_x509_certificates(bundle.encode())) == 2
    bad = runner.invoke(keys_cli.app, ["rotate", *data, "--algorithm", "HS256"])
    assert bad.exit_code == 2
    assert "HS256" in bad.output

    retired = runner.invoke(keys_cli.app, ["retire", new_kid, "--now", *data])
    assert retired.exit_code == 0, retired.output
    assert f"in place of {new_kid}" in retired.output
    assert f"Retired {new_kid}: tokens it signed are refused" in retired.output
    remaining = {k.kid for k in KeyStore(tmp_path / "keys").inventory()}
    assert new_kid not in remaining
    assert len(remaining) == 2
    unknown = runner.invoke(keys_cli.app, ["retire", "nope", *data])
    assert unknown.exit_code == 1
    assert "no signing key 'nope'" in unknown.output
