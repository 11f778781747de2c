"""Token signing keys: generated at first start, rotated with overlap, shared by workers.

The key directory (0700) holds one file per key (0600, see ``keyfile``). The file name
carries the key's activation time; that is the only state. The newest activated key signs;
an older key stops signing when the next one activates and keeps verifying for
``overlap`` seconds more, so tokens it signed live out their lifetime. Every worker derives
the same answer from the directory listing, which it rereads at most once per
``check_interval`` (and at once on an unknown ``kid``), so a ``hatchway keys rotate`` run by
another process is picked up without a restart. Generation and rotation hold an exclusive
flock(2), so workers starting together create one key, not one each.

A leaked key is retired at once with :meth:`KeyStore.retire_key` (``hatchway keys retire
KID --now``): its file goes, so every process stops trusting it at its next listing, and
:meth:`KeyStore.revision` tells caches of verified tokens to check their tokens again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import serialization

from hatchway.auth.tokens import keyfile
from hatchway.auth.tokens.errors import TokenError
from hatchway.auth.tokens.jwk import ALGORITHMS, VerificationKey
from hatchway.auth.tokens.keyfile import SigningKey

__all__ = [
    "DEFAULT_OVERLAP",
    "KeyBackend",
    "KeyFiles",
    "KeyInfo",
    "KeyState",
    "KeyStore",
    "SigningKey",
    "key_directory",
]

if TYPE_CHECKING:
    from hatchway.config.model import Config

log = logging.getLogger("hatchway.auth.tokens")

DEFAULT_OVERLAP = 3600.0  # comfortably above any token lifetime plus leeway


def key_directory(config: Config) -> Path:
    """``<storage.filesystem.rootdirectory>/keys``: keys live beside the data they guard
    (with S3 storage, in the local directory, ``storage.localdirectory`` or --data)."""
    driver, _ = config.storage.driver()
    if driver not in ("filesystem", "s3"):
        raise ValueError(
            f"storage driver {driver!r} has no directory for token signing keys: "
            "use filesystem or s3 storage"
        )
    return Path(config.storage.local_directory()) / "keys"


class KeyState(StrEnum):
    PENDING = "pending"  # stored, verifies, signs from its activation time
    SIGNING = "signing"
    VERIFYING = "verifying"  # rotated out, still inside the overlap
    RETIRED = "retired"  # past the overlap: verifies nothing, removed by retire()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    algorithm: str
    created: datetime
    activated: datetime  # signs from then on
    state: KeyState
    rotated_out: datetime | None  # when a newer key took over signing
    certificate_expires: datetime


class KeyStore:
    def __init__(
        self,
        directory: Path,
        algorithm: str = "ES256",
        *,
        overlap: float = DEFAULT_OVERLAP,
        check_interval: float = 1.0,
        backend: KeyBackend | None = None,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported token signing algorithm {algorithm!r}")
        self.directory = Path(directory)
        # Where the keys are: files in ``directory``, or the shared database (dbkeys).
        self.backend: KeyBackend = backend or KeyFiles(self.directory)
        self.algorithm = algorithm
        self.overlap = timedelta(seconds=overlap)
        self.check_interval = check_interval
        self._mutex = threading.RLock()
        self._names: tuple[str, ...] | None = None
        self._keys: list[SigningKey] = []  # ordered by activation, then kid
        self._checked = 0.0
        self._revision = 0  # bumped whenever the set of stored keys changes

    # -- reading -------------------------------------------------------------------------

    def signing_key(self) -> SigningKey:
        """The key that signs now; generated (under the lock) if there is none yet."""
        self._refresh()
        key = self._signing(_now())
        if key is not None:
            return key
        with self._mutex, self.backend.locked():
            self._refresh(force=True)
            key = self._signing(_now())
            if key is None:
                key = self._create(self.algorithm, _now())
            return key

    def revision(self) -> int:
        """A number that changes when keys are added or removed (re-listed at most once
        per ``check_interval``): a token verified under another revision must be checked
        again, since the key that signed it may be gone. Called for every request: the
        lock is taken only when the listing is due."""
        if self._names is None or time.monotonic() - self._checked >= self.check_interval:
            self._refresh()
        return self._revision

    def verification_keys(self) -> dict[str, VerificationKey]:
        """kid -> public key for every key that may have signed a live token."""
        self._refresh()
        return {k.kid: k.public_key for k in self._live()}

    def resolve(self, header: Mapping[str, object]) -> VerificationKey:
        """The key named by the token's ``kid``. Never trusts the token's own ``x5c``/``jwk``."""
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("token names no signing key")
        key = self.verification_keys().get(kid)
        if key is None:
            # Another process may have rotated a moment ago; the listing is cheap.
            self._refresh(force=True)
            key = {k.kid: k.public_key for k in self._live()}.get(kid)
        if key is None:
            raise TokenError("token is signed by an unknown key")
        return key

    def jwks(self) -> dict[str, object]:
        """RFC 7517 key set of every verification key, for ``/auth/jwks.json``."""
        self._refresh()
        return {"keys": [k.jwk() for k in self._live()]}

    def certificate_bundle(self) -> str:
        """PEM certificates of the live keys: distribution's ``auth.token.rootcertbundle``."""
        self.signing_key()
        now = _now()
        pem = serialization.Encoding.PEM
        return "".join(
            k.certificate.public_bytes(pem).decode("ascii")
            for k in self._live()
            if k.certificate.not_valid_after_utc > now
        )

    def inventory(self) -> list[KeyInfo]:
        """Every stored key with its state, oldest first (for ``hatchway keys list``)."""
        self._refresh(force=True)
        now = _now()
        return [
            KeyInfo(
                kid=k.kid,
                algorithm=k.algorithm,
                created=k.certificate.not_valid_before_utc + keyfile.CERT_BACKDATE,
                activated=k.activated,
                state=self._state(i, now),
                rotated_out=self._rotated_out(i, now),
                certificate_expires=k.certificate.not_valid_after_utc,
            )
            for i, k in enumerate(self._keys)
        ]

    def close(self) -> None:
        """Let go of the backend's connections (the store can still be used: they reopen)."""
        self.backend.close()

    # -- changing ------------------------------------------------------------------------

    def rotate(
        self, *, activate_at: datetime | None = None, algorithm: str | None = None
    ) -> SigningKey:
        """Make a new key that signs from ``activate_at`` (default now); retire stale keys.

        A later activation lets distribution 2.x, which reads its ``rootcertbundle`` only at
        start, be given the new certificate before the key signs anything.
        """
        algorithm = algorithm or self.algorithm
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported token signing algorithm {algorithm!r}")
        with self._mutex, self.backend.locked():
            now = _now()
            when = max(activate_at, now) if activate_at is not None else now
            key = self._create(algorithm, when)
            self._retire_locked(_now() - self.overlap)
        return key

    def retire_before(self, when: datetime) -> list[str]:
        """Delete keys that stopped signing before ``when``; returns their kids.

        ``retire_before(now)`` drops every key but the signing and pending ones at once
        (after a compromise); routine cleanup is :meth:`retire`.
        """
        with self._mutex, self.backend.locked():
            return self._retire_locked(when)

    def retire(self) -> list[str]:
        """Delete keys whose overlap has passed (they no longer verify anyway)."""
        return self.retire_before(_now() - self.overlap)

    def retire_key(self, kid: str, *, immediately: bool) -> SigningKey | None:
        """Stop ``kid`` signing; returns the key that took over, if it had to.

        The key that signs now is never left without a successor: a new key is made and
        signs from now on. ``immediately`` deletes ``kid`` at once, so it verifies
        nothing more and every token it signed is refused (a leaked key); otherwise it
        keeps verifying for the overlap, as after :meth:`rotate`.
        """
        with self._mutex, self.backend.locked():
            self._refresh(force=True)
            target = next((k for k in self._keys if k.kid == kid), None)
            if target is None:
                raise ValueError(f"no signing key {kid!r} (see hatchway keys list)")
            successor = None
            if self._signing(_now()) is target:
                successor = self._create(self.algorithm, _now())
            if immediately:
                self.backend.remove([target.path.name])
                log.warning("retired token signing key %s at once", kid)
                self._refresh(force=True)
            self._retire_locked(_now() - self.overlap)
        return successor

    # -- internals -----------------------------------------------------------------------

    def _create(self, algorithm: str, activated: datetime) -> SigningKey:
        kid, name, data = keyfile.new_key(algorithm, activated)
        self.backend.store(name, data)
        log.info("created %s token signing key %s, signing from %s", algorithm, kid, activated)
        self._refresh(force=True)
        for key in self._keys:
            if key.path.name == name:
                return key
        raise RuntimeError(f"token signing key {kid} vanished after it was written")

    def _retire_locked(self, when: datetime) -> list[str]:
        self._refresh(force=True)
        now = _now()
        removed, retired = [], []
        for i, key in enumerate(self._keys):
            out = self._rotated_out(i, now)
            if out is not None and out < when:
                retired.append(key.path.name)
                removed.append(key.kid)
                log.info("retired token signing key %s", key.kid)
        if removed:
            self.backend.remove(retired)
            self._refresh(force=True)
        return removed

    def _refresh(self, *, force: bool = False) -> None:
        with self._mutex:
            tick = time.monotonic()
            if not force and self._names is not None and tick - self._checked < self.check_interval:
                return
            self._checked = tick
            names = tuple(sorted(self.backend.names()))
            if names == self._names:
                return
            known = {k.path.name: k for k in self._keys}
            loaded = [known.get(n) or self.backend.load(n) for n in names]
            keys = [k for k in loaded if k is not None]
            self._keys = sorted(keys, key=lambda k: (k.activated, k.kid))
            self._names = names
            self._revision += 1

    def _signing(self, now: datetime) -> SigningKey | None:
        active = [k for k in self._keys if k.activated <= now]
        return active[-1] if active else None

    def _rotated_out(self, index: int, now: datetime) -> datetime | None:
        following = self._keys[index + 1] if index + 1 < len(self._keys) else None
        if following is None or following.activated > now:
            return None
        return following.activated

    def _state(self, index: int, now: datetime) -> KeyState:
        if self._keys[index].activated > now:
            return KeyState.PENDING
        out = self._rotated_out(index, now)
        if out is None:
            return KeyState.SIGNING
        return KeyState.VERIFYING if now < out + self.overlap else KeyState.RETIRED

    def _live(self) -> list[SigningKey]:
        with self._mutex:
            now = _now()
            return [
                k for i, k in enumerate(self._keys) if self._state(i, now) is not KeyState.RETIRED
            ]


def _now() -> datetime:
    return datetime.now(UTC)


class KeyBackend(Protocol):
    """Where keys are stored, each under its ``keyfile.file_name``."""

    def names(self) -> list[str]:
        """The names of the stored keys."""

    def load(self, name: str) -> SigningKey | None:
        """The key stored under ``name``, None if it is gone or unusable."""

    def store(self, name: str, data: bytes) -> None:
        """Store a new key (``keyfile.encode``) durably before returning."""

    def remove(self, names: list[str]) -> None:
        """Delete keys; a name already gone is no error."""

    def locked(self) -> AbstractContextManager[None]:
        """Exclude every other process that changes these keys while in the block."""

    def close(self) -> None:
        """Let go of connections (before a fork, or at the end)."""


class KeyFiles:
    """Keys as files in one directory: one machine (workers and the CLI)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def names(self) -> list[str]:
        try:
            listing = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return [n for n in listing if keyfile.parse_name(n) is not None]

    def load(self, name: str) -> SigningKey | None:
        return keyfile.load(self.directory / name)

    def store(self, name: str, data: bytes) -> None:
        keyfile.write_private(self.directory / name, data)

    def remove(self, names: list[str]) -> None:
        for name in names:
            (self.directory / name).unlink(missing_ok=True)
        keyfile.fsync_directory(self.directory)

    def locked(self) -> AbstractContextManager[None]:
        return keyfile.locked(self.directory)

    def close(self) -> None:
        pass
