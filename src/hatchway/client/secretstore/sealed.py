"""The encrypted credentials file: AES-256-GCM under a key from scrypt or from a key file.

Layout::

    magic    b"HWCRED"                 6 bytes
    version  1                         1
    kdf      1 = scrypt(passphrase)    1
             2 = HKDF-SHA256(key file)
    log2n, r, p                        3   scrypt cost (zero for a key file)
    salt                               16  random, made with the file
    check                              16  tells a wrong key from a modified file
    nonce                              12  random, new on every write
    ciphertext + 16-byte tag           rest

Everything before the nonce is the GCM associated data, so the format version, the KDF and
its parameters cannot be altered without the tag failing. The KDF yields 64 bytes: the AES
key and the check value, so a wrong passphrase is reported as such and not as tampering.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"HWCRED"
VERSION = 1
_HEADER = struct.Struct(">6sBBBBB16s16s")
NONCE_SIZE = 12
SALT_SIZE = 16
KEYFILE_SIZE = 32
HKDF_INFO = b"hatchway credentials file v1"
SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P = 15, 8, 1  # 32 MiB, about 0.1 s
_SCRYPT_MAX_MEMORY = 256 * 1024 * 1024


class Kdf(IntEnum):
    SCRYPT = 1
    KEYFILE = 2


class FormatError(Exception):
    """Not a credentials file this version can read (bad magic, version, truncated)."""


class WrongKeyError(Exception):
    """The passphrase or key file does not open this file."""


class TamperedError(Exception):
    """The key is right but the ciphertext fails authentication."""


@dataclass(frozen=True)
class Header:
    kdf: Kdf
    log2n: int
    r: int
    p: int
    salt: bytes
    check: bytes = b"\0" * 16

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC, VERSION, self.kdf, self.log2n, self.r, self.p, self.salt, self.check
        )


@dataclass(frozen=True)
class SealingKey:
    """A derived key, bound to the header (salt, KDF) it was derived for."""

    header: Header
    aes_key: bytes


def new_header(kdf: Kdf) -> Header:
    salt = os.urandom(SALT_SIZE)
    if kdf is Kdf.SCRYPT:
        return Header(kdf, SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P, salt)
    return Header(kdf, 0, 0, 0, salt)


def read_header(blob: bytes) -> Header:
    """Parse and sanity-check the header (without any key)."""
    if len(blob) < _HEADER.size + NONCE_SIZE + 16:
        if not blob.startswith(MAGIC[: len(blob)]):
            raise FormatError("not a hatchway credentials file")
        raise FormatError("truncated credentials file")
    magic, version, kdf, log2n, r, p, salt, check = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise FormatError("not a hatchway credentials file")
    if version != VERSION:
        raise FormatError(f"unsupported credentials file format version {version}")
    if kdf == Kdf.SCRYPT:
        if not (10 <= log2n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
            raise FormatError(f"unsupported scrypt parameters (2^{log2n}, {r}, {p})")
        if 128 * r * (1 << log2n) > _SCRYPT_MAX_MEMORY:
            raise FormatError(f"scrypt parameters need too much memory (2^{log2n}, {r})")
    elif kdf != Kdf.KEYFILE:
        raise FormatError(f"unknown key derivation {kdf}")
    return Header(Kdf(kdf), log2n, r, p, salt, check)


def derive(header: Header, secret: bytes) -> SealingKey:
    """The sealing key for ``header`` from a passphrase (scrypt) or key file bytes (HKDF).

    ``header.check`` is filled in from the derivation; compare it with :func:`open_blob`.
    """
    if header.kdf is Kdf.SCRYPT:
        material = Scrypt(
            salt=header.salt, length=64, n=1 << header.log2n, r=header.r, p=header.p
        ).derive(secret)
    else:
        material = HKDF(
            algorithm=hashes.SHA256(), length=64, salt=header.salt, info=HKDF_INFO
        ).derive(secret)
    derived = Header(header.kdf, header.log2n, header.r, header.p, header.salt, material[32:48])
    return SealingKey(derived, material[:32])


def seal(key: SealingKey, plaintext: bytes) -> bytes:
    """Header, a fresh nonce, and the ciphertext with the header as associated data."""
    header = key.header.pack()
    nonce = os.urandom(NONCE_SIZE)
    return header + nonce + AESGCM(key.aes_key).encrypt(nonce, plaintext, header)


def open_blob(key: SealingKey, blob: bytes) -> bytes:
    """Decrypt ``blob`` (whose header ``key`` was derived from); raises :class:`WrongKeyError`
    or :class:`TamperedError`."""
    stored = read_header(blob)
    if not hmac.compare_digest(stored.check, key.header.check):
        raise WrongKeyError
    aad = blob[: _HEADER.size]
    nonce = blob[_HEADER.size : _HEADER.size + NONCE_SIZE]
    try:
        return AESGCM(key.aes_key).decrypt(nonce, blob[_HEADER.size + NONCE_SIZE :], aad)
    except InvalidTag:
        raise TamperedError from None
