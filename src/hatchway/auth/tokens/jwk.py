"""Public keys as JOSE and distribution see them: algorithm, JWK, key IDs, ``x5c``.

Two key-ID formats matter. RFC 7638 thumbprints are what hatchway puts in ``kid`` and what
distribution 3.x and JWKS consumers look up. docker/libtrust key IDs are what distribution
2.x and docker_auth use: base32 of the first 240 bits of SHA-256 over the DER
SubjectPublicKeyInfo, in 12 colon-separated groups of 4.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

VerificationKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# The only algorithms hatchway issues or accepts. Never HS*: a verifier that accepts HMAC
# can be fooled into using a public key as the shared secret.
ALGORITHMS = ("ES256", "RS256")
MIN_RSA_BITS = 2048
_P256_BYTES = 32


def algorithm_for(key: VerificationKey | PrivateKey) -> str | None:
    """The one JWS algorithm this key may be used with, or None if we do not accept it."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return "ES256" if isinstance(key.curve, ec.SECP256R1) else None
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256" if key.key_size >= MIN_RSA_BITS else None
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64url string")  # noqa: TRY004 (a data error)
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return _b64url(value.to_bytes(size, "big"))


def public_jwk(key: VerificationKey) -> dict[str, str]:
    """The key's required public JWK members (RFC 7518 section 6), nothing else."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("only P-256 elliptic-curve keys are supported")  # noqa: TRY004
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _uint(numbers.x, _P256_BYTES),
            "y": _uint(numbers.y, _P256_BYTES),
        }
    rsa_numbers = key.public_numbers()
    return {"kty": "RSA", "n": _uint(rsa_numbers.n), "e": _uint(rsa_numbers.e)}


def thumbprint(key: VerificationKey) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 over the required members, sorted, no spaces."""
    canonical = json.dumps(public_jwk(key), sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def libtrust_key_id(key: VerificationKey) -> str:
    """docker/libtrust key ID, as distribution 2.x computes it for ``rootcertbundle`` keys."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, 48, 4))


def key_from_jwk(data: Mapping[str, object]) -> VerificationKey:
    """A public key from a JWK; private members, if any, are ignored (never loaded)."""
    kty = data.get("kty")
    if kty == "EC":
        if data.get("crv") != "P-256":
            raise ValueError("only P-256 elliptic-curve keys are supported")
        x = int.from_bytes(_b64url_decode(data.get("x")), "big")
        y = int.from_bytes(_b64url_decode(data.get("y")), "big")
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    if kty == "RSA":
        n = int.from_bytes(_b64url_decode(data.get("n")), "big")
        e = int.from_bytes(_b64url_decode(data.get("e")), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise ValueError(f"unsupported JWK key type {str(kty)[:20]!r}")


def certificate_key(cert: x509.Certificate) -> VerificationKey | None:
    """The certificate's public key if it is one we can verify with."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey) and algorithm_for(key):
        return key
    return None


def x5c_entry(cert: x509.Certificate) -> str:
    """A certificate as an ``x5c`` member: standard base64 (not base64url) of the DER."""
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


def x5c_certificate(value: object) -> x509.Certificate:
    if not isinstance(value, str):
        raise ValueError("x5c entries must be strings")  # noqa: TRY004 (a data error)
    return x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
