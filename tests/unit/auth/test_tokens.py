"""Bearer tokens: mint and verify, claims, kid and x5c, and each JWT attack rejected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hatchway.auth.access import parse_scope
from hatchway.auth.tokens import (
    KeyStore,
    TokenIssuer,
    TokenVerifier,
    thumbprint,
)
from tests.unit.auth.tokens_support import (
    AUD,
    ISS,
    PULL,
    SPKI,
    b64url,
    claims,
    der_b64,
    forge,
    rejected,
    self_signed,
)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


@pytest.fixture
def issuer(store: KeyStore) -> TokenIssuer:
    return TokenIssuer(store, ISS)


@pytest.fixture
def verifier(store: KeyStore) -> TokenVerifier:
    return TokenVerifier(store, ISS, AUD)


# -- minting and verifying -------------------------------------------------------------------


def test_round_trip(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    issued_token = issuer.mint("alice", AUD, PULL)
    got = verifier.verify(issued_token.token)
    assert (got.subject, got.audience, got.issuer, got.access) == ("alice", AUD, ISS, PULL)
    assert got.jti == issued_token.jti
    assert got.issued_at == issued_token.issued_at == got.not_before
    assert got.expires_at == issued_token.expires_at
    assert issued_token.expires_in == 300
    assert issued_token.expires_at - issued_token.issued_at == timedelta(seconds=300)
    assert issued_token.token not in repr(issued_token)


def test_claims_and_header(store: KeyStore, issuer: TokenIssuer) -> None:
    token = issuer.mint("", AUD, [*PULL, parse_scope("registry:catalog:*")]).token
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"}
    assert payload["aud"] == AUD  # a string: distribution 2.x cannot read a list
    assert payload["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    assert header["kid"] == store.signing_key().kid
    bare = TokenIssuer(store, ISS, x5c=False).mint("a", AUD, []).token
    assert "x5c" not in jwt.get_unverified_header(bare)


def test_token_id_rides_along_for_revocation(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    token = issuer.mint("alice", AUD, PULL, token_id="42").token
    assert jwt.decode(token, options={"verify_signature": False})["token_id"] == "42"
    assert verifier.verify(token).token_id == "42"
    assert verifier.verify(issuer.mint("alice", AUD, PULL).token).token_id is None


def test_lifetime_is_never_below_sixty_seconds(store: KeyStore) -> None:
    assert TokenIssuer(store, ISS, expiration=10).mint("a", AUD, []).expires_in == 60
    assert TokenIssuer(store, ISS).mint("a", AUD, [], lifetime=5).expires_in == 60
    assert TokenIssuer(store, ISS).mint("a", AUD, [], lifetime=900).expires_in == 900


def test_kid_is_the_rfc7638_thumbprint(store: KeyStore, issuer: TokenIssuer) -> None:
    public = store.signing_key().public_key
    assert isinstance(public, ec.EllipticCurvePublicKey)
    members = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    canonical = '{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}'.format(**members)
    expected = b64url(hashlib.sha256(canonical.encode()).digest())
    assert jwt.get_unverified_header(issuer.mint("a", AUD, []).token)["kid"] == expected


def test_rfc7638_example_vector() -> None:
    """RFC 7638 section 3.1's own example key and thumbprint."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ"
        "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF"
        "TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    key = jwt.algorithms.RSAAlgorithm.from_jwk({"kty": "RSA", "n": n, "e": "AQAB"})
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"  # type: ignore[arg-type]


def test_rs256_round_trip(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", "RS256")
    token = TokenIssuer(store, ISS).mint("bob", AUD, PULL).token
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert TokenVerifier(store, ISS, AUD).verify(token).subject == "bob"
    public = store.signing_key().public_key
    assert isinstance(public, rsa.RSAPublicKey)
    members = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    canonical = '{{"e":"{e}","kty":"RSA","n":"{n}"}}'.format(**members)
    assert store.signing_key().kid == b64url(hashlib.sha256(canonical.encode()).digest())


def test_verifier_takes_a_kid_to_key_callable(store: KeyStore, issuer: TokenIssuer) -> None:
    verifier = TokenVerifier(store.verification_keys, ISS, AUD)
    assert verifier.verify(issuer.mint("a", AUD, PULL).token).access == PULL


def test_x5c_is_the_signing_certificate(store: KeyStore, issuer: TokenIssuer) -> None:
    header = jwt.get_unverified_header(issuer.mint("a", AUD, []).token)
    (entry,) = header["x5c"]
    cert = x509.load_der_x509_certificate(base64.b64decode(entry, validate=True))
    assert cert.public_key().public_bytes(*SPKI) == store.signing_key().public_key.public_bytes(
        *SPKI
    )
    cert.verify_directly_issued_by(cert)  # self-signed
    assert cert.not_valid_before_utc < datetime.now(UTC) < cert.not_valid_after_utc


# -- attacks: each is rejected with a reason that never holds the token -----------------------


def test_alg_none_is_rejected(store: KeyStore, verifier: TokenVerifier) -> None:
    kid = store.signing_key().kid
    token = jwt.encode(claims(), "", algorithm="none", headers={"kid": kid})
    assert rejected(verifier, token) == "token algorithm is not allowed"
    assert rejected(verifier, token.rsplit(".", 1)[0] + ".") == "token algorithm is not allowed"


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_hs256_signed_with_the_public_key_is_rejected(tmp_path: Path, algorithm: str) -> None:
    store = KeyStore(tmp_path / "k", algorithm)
    key = store.signing_key()
    secrets_tried = [
        key.public_key.public_bytes(serialization.Encoding.PEM, SPKI[1]),
        store.certificate_bundle().encode(),
        json.dumps(key.jwk()).encode(),
    ]
    verifier = TokenVerifier(store, ISS, AUD)
    for secret in secrets_tried:
        head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
        body = b64url(json.dumps(claims()).encode())
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        token = f"{head}.{body}.{b64url(mac)}"
        assert rejected(verifier, token) == "token algorithm is not allowed"


def test_alg_that_does_not_fit_the_key_is_rejected(
    store: KeyStore, verifier: TokenVerifier
) -> None:
    token = forge(store)
    _, body, sig = token.split(".")
    swapped = b64url(json.dumps({"alg": "RS256", "kid": store.signing_key().kid}).encode())
    assert rejected(verifier, f"{swapped}.{body}.{sig}") == "token algorithm does not match its key"


def test_unknown_kid_and_missing_kid_are_rejected(verifier: TokenVerifier, store: KeyStore) -> None:
    store.signing_key()
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), attacker, algorithm="ES256", headers={"kid": "not-ours"})
    assert rejected(verifier, token) == "token is signed by an unknown key"
    token = jwt.encode(claims(), attacker, algorithm="ES256")
    assert rejected(verifier, token) == "token names no signing key"


def test_attackers_own_x5c_and_jwk_are_not_trusted(
    store: KeyStore, verifier: TokenVerifier
) -> None:
    ours = store.signing_key()
    attacker = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(attacker, "attacker")
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    own_kid = thumbprint(attacker.public_key())
    for headers in (
        {"kid": own_kid, "x5c": [der_b64(cert)]},
        {"kid": own_kid, "jwk": jwk},
        {"x5c": [der_b64(cert)]},
    ):
        token = jwt.encode(claims(), attacker, algorithm="ES256", headers=headers)
        assert rejected(verifier, token) in {
            "token is signed by an unknown key",
            "token names no signing key",
        }
    # Our kid with the attacker's certificate: the key comes from the kid, so the
    # attacker's signature does not verify.
    token = jwt.encode(
        claims(), attacker, algorithm="ES256", headers={"kid": ours.kid, "x5c": [der_b64(cert)]}
    )
    assert rejected(verifier, token) == "token signature is invalid"


def test_flipped_signature_byte_is_rejected(issuer: TokenIssuer, verifier: TokenVerifier) -> None:
    head, body, sig = issuer.mint("a", AUD, PULL).token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[10] ^= 0x01
    assert rejected(verifier, f"{head}.{body}.{b64url(bytes(raw))}") == "token signature is invalid"
    # A changed claim under the old signature is the same thing.
    forged_body = b64url(json.dumps(claims(sub="admin")).encode())
    assert rejected(verifier, f"{head}.{forged_body}.{sig}") == "token signature is invalid"


def test_time_claims_with_leeway(store: KeyStore, verifier: TokenVerifier) -> None:
    now = int(time.time())
    assert rejected(verifier, forge(store, exp=now - 31)) == "token has expired"
    assert verifier.verify(forge(store, exp=now - 20)).subject == "alice"  # inside the leeway
    assert rejected(verifier, forge(store, nbf=now + 120)) == "token is not valid yet"
    assert rejected(verifier, forge(store, iat=now + 120)) == "token is not valid yet"
    assert verifier.verify(forge(store, nbf=now + 20)).subject == "alice"
    strict = TokenVerifier(store, ISS, AUD, leeway=0)
    assert rejected(strict, forge(store, exp=now - 2)) == "token has expired"


def test_audience_and_issuer_must_match(store: KeyStore, verifier: TokenVerifier) -> None:
    assert rejected(verifier, forge(store, aud="other")) == "token is for another audience"
    assert rejected(verifier, forge(store, aud=["other"])) == "token is for another audience"
    assert verifier.verify(forge(store, aud=["other", AUD])).audience == AUD
    assert rejected(verifier, forge(store, iss="evil")) == "token is from an untrusted issuer"


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"])
def test_missing_claims_are_rejected(store: KeyStore, verifier: TokenVerifier, claim: str) -> None:
    token = forge(store, **{claim: None})
    assert rejected(verifier, token) == f"token lacks the {claim} claim"


@pytest.mark.parametrize(
    "access",
    ["repository:a:pull", [["repository", "a", ["pull"]]], [{"type": "repository", "name": "a"}]],
)
def test_malformed_access_claim_is_rejected(
    store: KeyStore, verifier: TokenVerifier, access: object
) -> None:
    assert rejected(verifier, forge(store, access=access)) == "token access claim is malformed"


def test_malformed_token_id_is_rejected(store: KeyStore, verifier: TokenVerifier) -> None:
    assert rejected(verifier, forge(store, token_id=42)) == "token token_id claim is malformed"


def test_absent_access_claim_grants_nothing(store: KeyStore, verifier: TokenVerifier) -> None:
    token = forge(store, access=None)
    assert verifier.verify(token).access == []


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "x" * 70_000, "ä.ö.ü"])
def test_malformed_tokens(store: KeyStore, verifier: TokenVerifier, token: str) -> None:
    store.signing_key()
    assert rejected(verifier, token) in {"token is malformed", "token algorithm is not allowed"}
