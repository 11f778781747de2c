"""Helpers for the token tests: claims, forged tokens, certificates."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hatchway.auth.access import parse_scope
from hatchway.auth.tokens import (
    KeyStore,
    TokenError,
    TokenVerifier,
)

ISS, AUD = "hatchway", "registry.example"
PULL = [parse_scope("repository:team/app:pull,push")]
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISS, "sub": "alice", "aud": AUD, "exp": now + 300}
    base |= {"nbf": now, "iat": now, "jti": "j1", "access": [a.claim() for a in PULL]}
    return {k: v for k, v in (base | overrides).items() if v is not None}


def forge(store: KeyStore, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    """A token signed with the store's real key, with any claims: tests the claim checks."""
    key = store.signing_key()
    head = {"kid": key.kid} | (headers or {})
    return jwt.encode(claims(**overrides), key.private_key, algorithm=key.algorithm, headers=head)


def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as info:
        verifier.verify(token)
    assert len(token) < 8 or token not in str(info.value)
    return info.value.reason


def self_signed(key: ec.EllipticCurvePrivateKey, name: str, **kw: Any) -> x509.Certificate:
    return issued(key, name, key, name, **kw)


def issued(
    key: ec.EllipticCurvePrivateKey,
    name: str,
    signer: ec.EllipticCurvePrivateKey,
    signer_name: str,
    *,
    ca: bool = False,
    days: int = 30,
    basic_constraints: bool = True,
    cert_sign: bool | None = None,
    path_length: int | None = None,
) -> x509.Certificate:
    """A certificate for ``key`` signed by ``signer``. ``basic_constraints=False`` leaves
    the extension out (an ordinary end-entity certificate as many CAs issue them);
    ``cert_sign`` adds a KeyUsage extension with or without keyCertSign."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, signer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1) if days > 0 else now - timedelta(days=9))
        .not_valid_after(now + timedelta(days=days))
    )
    if basic_constraints:
        constraints = x509.BasicConstraints(ca=ca, path_length=path_length if ca else None)
        builder = builder.add_extension(constraints, critical=True)
    if cert_sign is not None:
        builder = builder.add_extension(key_usage(cert_sign=cert_sign), critical=True)
    return builder.sign(signer, hashes.SHA256())


def key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
