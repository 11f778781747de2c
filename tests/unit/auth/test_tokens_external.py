"""Tokens of an external issuer: certificate bundle (x5c chains, libtrust kids) and JWKS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hatchway.auth.gate import TokenGate
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.tokens import (
    Claims,
    KeyStore,
    TokenError,
    TokenIssuer,
    TokenVerifier,
    TrustedKeys,
    external_verifier,
    libtrust_key_id,
    thumbprint,
)
from hatchway.auth.tokens.remote import KeysRefreshing
from tests.unit.auth.tokens_support import (
    AUD,
    ISS,
    PULL,
    SPKI,
    claims,
    der_b64,
    forge,
    issued,
    rejected,
    self_signed,
)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


@pytest.fixture
def issuer(store: KeyStore) -> TokenIssuer:
    return TokenIssuer(store, ISS)


# -- external issuers -------------------------------------------------------------------------


def test_libtrust_key_id_format() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    encoded = base64.b32encode(hashlib.sha256(key.public_bytes(*SPKI)).digest()[:30]).decode()
    assert libtrust_key_id(key) == ":".join(encoded[i : i + 4] for i in range(0, 48, 4))
    assert re.fullmatch(r"(?:[A-Z2-7]{4}:){11}[A-Z2-7]{4}", libtrust_key_id(key))


class AuthServer:
    """A docker_auth-like issuer: a CA, an intermediate, and a signing key under them."""

    def __init__(self, tmp_path: Path) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self_signed(self.root_key, "auth root", ca=True)
        self.mid_key = ec.generate_private_key(ec.SECP256R1())
        self.mid = issued(self.mid_key, "auth mid", self.root_key, "auth root", ca=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.leaf = issued(self.key, "auth signer", self.mid_key, "auth mid")
        self.bundle = tmp_path / "bundle.pem"
        self.bundle.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))

    def token(self, headers: dict[str, Any], key: ec.EllipticCurvePrivateKey | None = None) -> str:
        return jwt.encode(claims(iss="auth"), key or self.key, algorithm="ES256", headers=headers)


def test_external_x5c_chain_to_the_bundle(tmp_path: Path) -> None:
    auth = AuthServer(tmp_path)
    verifier = external_verifier("auth", AUD, rootcertbundle=auth.bundle)
    good = auth.token({"x5c": [der_b64(auth.leaf), der_b64(auth.mid)]})
    assert verifier.verify(good).access == PULL
    # The leaf alone cannot reach the root; an attacker's chain, or a chain that merely
    # includes the root, is not trusted; nor is a leaf "issued" by a non-CA.
    attacker = ec.generate_private_key(ec.SECP256R1())
    fake_leaf = issued(attacker, "auth signer", attacker, "auth mid")
    non_ca_child = issued(attacker, "x", auth.key, "auth signer")
    for headers in (
        {"x5c": [der_b64(auth.leaf)]},
        {"x5c": [der_b64(fake_leaf), der_b64(auth.mid), der_b64(auth.root)]},
        {"x5c": [der_b64(non_ca_child), der_b64(auth.leaf), der_b64(auth.mid)]},
        {"x5c": [der_b64(self_signed(attacker, "auth root"))]},
    ):
        assert "trusted" in rejected(verifier, auth.token(headers, attacker))
    # Signed by the attacker with the real chain in the header: the signature fails.
    stolen = auth.token({"x5c": [der_b64(auth.leaf), der_b64(auth.mid)]}, attacker)
    assert rejected(verifier, stolen) == "token signature is invalid"
    assert (
        rejected(verifier, auth.token({"x5c": ["%%%"]})) == "token certificate chain is malformed"
    )


def test_external_x5c_only_ca_certificates_may_sign(tmp_path: Path) -> None:
    """Only a certificate with basicConstraints CA:TRUE (and keyCertSign where it has a
    KeyUsage) may issue another in an ``x5c`` chain, as Go (distribution) requires of
    intermediates: otherwise the key of ANY certificate the trusted CA ever issued, say a
    web server's, could mint a "signer" certificate and with it registry tokens."""
    auth = AuthServer(tmp_path)
    verifier = external_verifier("auth", AUD, rootcertbundle=auth.bundle)
    attacker = ec.generate_private_key(ec.SECP256R1())

    def chain_via(issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey) -> str:
        name = issuer.subject.rfc4514_string().removeprefix("CN=")
        minted = issued(attacker, "auth signer", issuer_key, name)
        return auth.token({"x5c": [der_b64(minted), der_b64(issuer)]}, attacker)

    ordinary_key = ec.generate_private_key(ec.SECP256R1())
    refused = {
        # An ordinary certificate from the CA: no basicConstraints at all ...
        "no basicConstraints": issued(
            ordinary_key, "web server", auth.root_key, "auth root", basic_constraints=False
        ),
        # ... or an end-entity one that says so, with or without a KeyUsage.
        "CA:FALSE": issued(ordinary_key, "web server", auth.root_key, "auth root"),
        "CA:FALSE, keyCertSign": issued(
            ordinary_key, "web server", auth.root_key, "auth root", cert_sign=True
        ),
        # A CA certificate whose KeyUsage does not allow certificate signing.
        "CA:TRUE without keyCertSign": issued(
            ordinary_key, "limited ca", auth.root_key, "auth root", ca=True, cert_sign=False
        ),
    }
    for case, issuer in refused.items():
        assert rejected(verifier, chain_via(issuer, ordinary_key)) == (
            "token certificate chain is not trusted"
        ), case

    # A real intermediate CA works, with or without a KeyUsage extension.
    mid_key = ec.generate_private_key(ec.SECP256R1())
    for cert_sign in (None, True):
        mid = issued(mid_key, "mid", auth.root_key, "auth root", ca=True, cert_sign=cert_sign)
        assert verifier.verify(chain_via(mid, mid_key)).subject == "alice"

    # pathLen is honoured: a CA limited to 0 intermediates below it cannot issue a CA.
    capped_key = ec.generate_private_key(ec.SECP256R1())
    capped = issued(capped_key, "capped", auth.root_key, "auth root", ca=True, path_length=0)
    sub = issued(mid_key, "sub", capped_key, "capped", ca=True)
    leaf = issued(attacker, "auth signer", mid_key, "sub")
    token = auth.token({"x5c": [der_b64(leaf), der_b64(sub), der_b64(capped)]}, attacker)
    assert rejected(verifier, token) == "token certificate chain is not trusted"


def test_external_expired_certificate_is_rejected(tmp_path: Path) -> None:
    auth = AuthServer(tmp_path)
    old = issued(auth.key, "auth signer", auth.mid_key, "auth mid", days=-1)
    verifier = external_verifier("auth", AUD, rootcertbundle=auth.bundle)
    token = auth.token({"x5c": [der_b64(old), der_b64(auth.mid)]})
    assert rejected(verifier, token) == "token certificate is expired or not yet valid"


def test_external_kid_forms_from_a_bundle(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(self_signed(key, "docker_auth").public_bytes(serialization.Encoding.PEM))
    verifier = external_verifier("auth", AUD, rootcertbundle=bundle)
    for kid in (libtrust_key_id(key.public_key()), thumbprint(key.public_key())):
        token = jwt.encode(claims(iss="auth"), key, algorithm="ES256", headers={"kid": kid})
        assert verifier.verify(token).key_id == kid
    other = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(iss="auth"), other, algorithm="ES256", headers={"kid": "AAAA:BBBB"})
    assert rejected(verifier, token) == "token is signed by an unknown key"
    assert rejected(verifier, forge(KeyStore(tmp_path / "k"), iss="auth")) == (
        "token is signed by an unknown key"
    )


def test_external_verifier_trusts_a_hatchway_bundle(
    store: KeyStore, issuer: TokenIssuer, tmp_path: Path
) -> None:
    """hatchway behind hatchway: the `keys cert` bundle verifies tokens by kid or by x5c."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(store.certificate_bundle())
    verifier = external_verifier(ISS, AUD, rootcertbundle=bundle)
    assert verifier.verify(issuer.mint("a", AUD, PULL).token).subject == "a"
    x5c = store.signing_key().x5c
    by_chain = forge(store, headers={"kid": "unknown", "x5c": x5c})
    assert verifier.verify(by_chain).subject == "alice"


def test_external_jwks_file(store: KeyStore, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    store.signing_key()
    path.write_text(json.dumps(store.jwks()))
    verifier = external_verifier(ISS, AUD, jwks=str(path))
    bare = TokenIssuer(store, ISS, x5c=False).mint("a", AUD, PULL).token
    assert verifier.verify(bare).access == PULL
    store.rotate()
    assert rejected(verifier, TokenIssuer(store, ISS).mint("a", AUD, []).token) == (
        "token is signed by an unknown key"
    )
    with pytest.raises(ValueError, match="rootcertbundle or a jwks"):
        external_verifier(ISS, AUD)


@dataclass
class JwksServer:
    """A JWKS endpoint on 127.0.0.1; ``delay`` holds each answer back that long."""

    url: str
    document: dict[str, Any]
    hits: list[int]
    delay: float = 0.0


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer("", {"keys": []}, [])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(1)
            time.sleep(state.delay)
            body = json.dumps(state.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def verify_waiting(verifier: TokenVerifier, token: str) -> Claims:
    """Verify; if the key is being fetched, wait for the fetch (as the gate does) and retry."""
    try:
        return verifier.verify(token)
    except KeysRefreshing as pending:
        pending.refresh.result(timeout=30)
        return verifier.verify(token)


def test_external_jwks_url_refetches_on_unknown_kid_at_most_once_per_interval(
    store: KeyStore, jwks_server: JwksServer
) -> None:
    store.signing_key()
    jwks_server.document["keys"] = store.jwks()["keys"]
    issuer = TokenIssuer(store, ISS, x5c=False)
    verifier = external_verifier(ISS, AUD, jwks=jwks_server.url, jwks_insecure=True)
    assert isinstance(verifier.keys, TrustedKeys)
    assert verifier.keys.remote is not None
    verifier.keys.remote.start().result(timeout=30)  # the fetch begun at start
    assert len(jwks_server.hits) == 1
    assert verifier.verify(issuer.mint("a", AUD, []).token).subject == "a"
    assert verifier.verify(issuer.mint("b", AUD, []).token).subject == "b"
    assert len(jwks_server.hits) == 1  # cached
    store.rotate()
    jwks_server.document["keys"] = store.jwks()["keys"]
    rotated = issuer.mint("c", AUD, []).token
    for _ in range(2):  # within the interval: no fetch, and no wait for one
        with pytest.raises(TokenError) as info:
            verifier.verify(rotated)
        assert type(info.value) is TokenError
        assert info.value.reason == "token is signed by an unknown key"
    assert len(jwks_server.hits) == 1
    eager = TokenVerifier(
        TrustedKeys(jwks_url=jwks_server.url, jwks_insecure=True, refetch_interval=0), ISS, AUD
    )
    assert verify_waiting(eager, rotated).subject == "c"
    assert len(jwks_server.hits) == 2


def test_external_jwks_unknown_kid_does_not_stall_other_requests(
    store: KeyStore, jwks_server: JwksServer, tmp_path: Path
) -> None:
    """A token whose kid sends the gate to a slow JWKS endpoint waits for it off the event
    loop: a request with a known key, sent after it, is answered first."""
    bundle_key = ec.generate_private_key(ec.SECP256R1())
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(self_signed(bundle_key, "auth").public_bytes(serialization.Encoding.PEM))
    known = jwt.encode(
        claims(),
        bundle_key,
        algorithm="ES256",
        headers={"kid": thumbprint(bundle_key.public_key())},
    )
    store.signing_key()
    jwks_server.document["keys"] = store.jwks()["keys"]
    jwks_server.delay = 3.0
    from_jwks = forge(store)
    keys = TrustedKeys(
        certificates=x509.load_pem_x509_certificates(bundle.read_bytes()),
        jwks_url=jwks_server.url,
        jwks_insecure=True,
        refetch_interval=0,
    )
    gate = TokenGate(TokenVerifier(keys, ISS, AUD), AUD)
    finished: list[str] = []

    async def request(name: str, token: str) -> None:
        await gate.check(f"Bearer {token}", [], "https://auth/token", ClientInfo())
        finished.append(name)

    async def both() -> None:
        slow = asyncio.create_task(request("jwks kid", from_jwks))
        await asyncio.sleep(0)  # the slow one starts first and asks for the JWKS
        await request("bundle kid", known)
        assert finished == ["bundle kid"]  # answered while the JWKS fetch is under way
        await slow

    asyncio.run(both())
    assert finished == ["bundle kid", "jwks kid"]
    assert len(jwks_server.hits) == 1


def test_external_jwks_requests_during_a_fetch_share_it(
    store: KeyStore, jwks_server: JwksServer
) -> None:
    """Requests that arrive while the JWKS is being fetched wait for that one fetch."""
    store.signing_key()
    jwks_server.document["keys"] = store.jwks()["keys"]
    jwks_server.delay = 0.5
    keys = TrustedKeys(jwks_url=jwks_server.url, jwks_insecure=True, refetch_interval=0)
    header = {"kid": store.signing_key().kid}
    pending = []
    for _ in range(5):
        with pytest.raises(KeysRefreshing) as info:
            keys.resolve(header)
        pending.append(info.value.refresh)
    assert all(p is pending[0] for p in pending)
    pending[0].result(timeout=30)
    assert len(jwks_server.hits) == 1
    assert keys.resolve(header) is not None


def test_external_jwks_url_that_is_down_rejects_without_raising_other_errors(
    caplog: pytest.LogCaptureFixture, store: KeyStore
) -> None:
    keys = TrustedKeys(jwks_url="http://127.0.0.1:9/jwks", jwks_insecure=True, timeout=1)
    verifier = TokenVerifier(keys, ISS, AUD)
    with pytest.raises(KeysRefreshing) as info:
        verifier.verify(forge(store))
    info.value.refresh.result(timeout=30)
    assert rejected(verifier, forge(store)) == "token is signed by an unknown key"
    assert "cannot fetch JWKS" in caplog.text
    for url, insecure in (
        ("file:///etc/passwd", True),
        ("http://127.0.0.1:9/jwks", False),
        ("http://auth.example.com/jwks", True),
    ):
        with pytest.raises(ValueError, match=r"https|loopback"):
            TrustedKeys(jwks_url=url, jwks_insecure=insecure)
