"""One signing key on disk: generation, its self-signed certificate, the file format.

A key file is named ``<activation>_<kid>.pem`` and holds the PKCS#8 private key followed by
the certificate. It is written to a dot-named temporary file (0600), fsynced and renamed,
so a reader listing the directory sees whole keys or none.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hatchway.auth.tokens.jwk import (
    PrivateKey,
    VerificationKey,
    algorithm_for,
    public_jwk,
    thumbprint,
    x5c_entry,
)

log = logging.getLogger("hatchway.auth.tokens")

STAMP = "%Y%m%dT%H%M%S%fZ"
SUFFIX = ".pem"
# Verifiers whose clock lags ours must still accept a certificate made a moment ago.
CERT_BACKDATE = timedelta(hours=1)
CERT_VALIDITY = timedelta(days=3650)
RSA_BITS = 2048
LOCK_NAME = ".lock"

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str  # RFC 7638 thumbprint of the public key
    algorithm: str
    private_key: PrivateKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    activated: datetime  # signs from then on, until a newer key activates
    path: Path
    # Derived once: every mint and verify needs them.
    public_key: VerificationKey = field(init=False, repr=False, compare=False)
    x5c: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_key", self.private_key.public_key())
        object.__setattr__(self, "x5c", (x5c_entry(self.certificate),))

    def jwk(self) -> dict[str, object]:
        """The public JWK with ``kid``, ``alg``, ``use`` and the certificate as ``x5c``."""
        return {
            **public_jwk(self.public_key),
            "kid": self.kid,
            "alg": self.algorithm,
            "use": "sig",
            "x5c": list(self.x5c),
        }


def load(path: Path) -> SigningKey | None:
    """The key stored at ``path``, or None (logged) if it is not a usable key file."""
    activated = parse_name(path.name)
    if activated is None:
        return None
    try:
        if path.stat().st_mode & 0o077:
            log.warning("token key file %s is readable by others: chmod 600 it", path)
        key, cert = decode(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        # The exception's type only: messages of key parsers are not for logs.
        log.warning("ignoring token key file %s: %s", path, type(exc).__name__)
        return None
    return _signing_key(key, cert, activated, path)


def from_bytes(name: str, data: bytes) -> SigningKey | None:
    """A key stored elsewhere than in a file (the database) under its file ``name``;
    its ``path`` is that bare name. None (logged) if it is not a usable key."""
    activated = parse_name(name)
    if activated is None:
        return None
    try:
        key, cert = decode(data)
    except (ValueError, TypeError) as exc:
        log.warning("ignoring stored token key %s: %s", name, type(exc).__name__)
        return None
    return _signing_key(key, cert, activated, Path(name))


def _signing_key(
    key: PrivateKey, cert: x509.Certificate, activated: datetime, path: Path
) -> SigningKey | None:
    algorithm = algorithm_for(key)
    if algorithm is None:
        return None
    return SigningKey(thumbprint(key.public_key()), algorithm, key, cert, activated, path)


def generate(algorithm: str) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise ValueError(f"unsupported token signing algorithm {algorithm!r}: use ES256 or RS256")


def self_signed(key: PrivateKey, kid: str, now: datetime) -> x509.Certificate:
    """The certificate distribution's ``rootcertbundle`` trusts and ``x5c`` carries.

    Go's x509 verifier accepts a leaf that is itself in the root pool without building a
    chain, so a plain self-signed end-entity certificate suffices for 2.x and 3.x.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hatchway {kid}"[:64])])
    public = key.public_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CERT_BACKDATE)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def encode(key: PrivateKey, cert: x509.Certificate) -> bytes:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private + cert.public_bytes(serialization.Encoding.PEM)


def decode(data: bytes) -> tuple[PrivateKey, x509.Certificate]:
    """Parse a key file; the certificate must be for the private key beside it."""
    blocks = {m.group(1): m.group(0) for m in _PEM_BLOCK.finditer(data)}
    if b"PRIVATE KEY" not in blocks or b"CERTIFICATE" not in blocks:
        raise ValueError("expected a PRIVATE KEY and a CERTIFICATE block")
    key = serialization.load_pem_private_key(blocks[b"PRIVATE KEY"], password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) or not algorithm_for(
        key
    ):
        raise ValueError("unsupported private key type")
    cert = x509.load_pem_x509_certificate(blocks[b"CERTIFICATE"])
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise ValueError("the certificate is not for this private key")
    return key, cert


def file_name(activated: datetime, kid: str) -> str:
    return f"{activated.astimezone(UTC).strftime(STAMP)}_{kid}{SUFFIX}"


def parse_name(name: str) -> datetime | None:
    """The activation time in a key file name, or None if the name is not a key file."""
    if name.startswith(".") or not name.endswith(SUFFIX):
        return None
    stamp, sep, _ = name.partition("_")
    if not sep:
        return None
    try:
        return datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def create(directory: Path, algorithm: str, activated: datetime) -> tuple[str, Path]:
    """Generate a key with its certificate and store it; returns (kid, path)."""
    kid, name, data = new_key(algorithm, activated)
    path = directory / name
    write_private(path, data)
    return kid, path


def new_key(algorithm: str, activated: datetime) -> tuple[str, str, bytes]:
    """Generate a key with its certificate: (kid, file name, PEM to store)."""
    key = generate(algorithm)
    kid = thumbprint(key.public_key())
    return kid, file_name(activated, kid), encode(key, self_signed(key, kid, datetime.now(UTC)))


def write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 from the first byte (never readable by others)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)  # exact, whatever the umask
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_directory(directory: Path) -> None:
    """Create the key directory 0700 (and the data directory above it, if it is new, 0700
    too), and tighten the key directory if it was made looser."""
    directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        directory.chmod(0o700)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the directory's exclusive flock(2): one process generates or rotates at a time."""
    ensure_directory(directory)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
