"""Digests (``algorithm:encoded``) and streaming hashers."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from hatchway.errors import DIGEST_INVALID, HatchwayError

# Only algorithms the image-spec registers; each has a fixed, lower-case hex form.
_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_HEX_RE = re.compile(r"^[a-f0-9]+$")


class Hasher(Protocol):
    @property
    def name(self) -> str: ...
    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse and validate a digest; anything else is ``DIGEST_INVALID``.

        Validation is strict because digests become storage paths.
        """
        match = _DIGEST_RE.fullmatch(value)
        if match is None:
            raise HatchwayError(DIGEST_INVALID, "invalid digest", {"digest": value[:200]})
        algorithm, encoded = match.groups()
        length = _ALGORITHMS.get(algorithm)
        if length is None:
            raise HatchwayError(
                DIGEST_INVALID, "unsupported digest algorithm", {"digest": value[:200]}
            )
        if len(encoded) != length or not _HEX_RE.fullmatch(encoded):
            raise HatchwayError(DIGEST_INVALID, "invalid digest", {"digest": value[:200]})
        return cls(algorithm, encoded)

    def hasher(self) -> Hasher:
        return new_hasher(self.algorithm)


def new_hasher(algorithm: str = "sha256") -> Hasher:
    return hashlib.new(algorithm)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
