"""Credentials in one encrypted file (see :mod:`.sealed` for the format).

The key comes from ``HATCHWAY_CREDENTIALS_PASSPHRASE`` (scrypt) or from a key file of random
bytes that only its owner can read. A new file uses the passphrase when one is set, else the
key file, which the first ``store`` creates if it is missing. An existing file's header says
which of the two it needs. Writers hold an exclusive lock across read-modify-write and
replace the file atomically; a file that fails authentication is reported and never
rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from hatchway.client.secretstore import files, sealed
from hatchway.client.secretstore.base import (
    ENV_KEYFILE,
    ENV_PASSPHRASE,
    Entry,
    NotFoundError,
    Settings,
    StoreError,
)

Auths = dict[str, Entry]


class EncryptedFileStore:
    """A :class:`~hatchway.client.secretstore.base.SecretStore` in an AES-GCM file."""

    def __init__(self, path: Path, keyfile: Path, passphrase: str | None) -> None:
        self.path = path
        self.keyfile = keyfile
        self.passphrase = passphrase

    @classmethod
    def from_settings(cls, settings: Settings) -> EncryptedFileStore:
        return cls(settings.file, settings.keyfile, settings.passphrase)

    # -- the store ----------------------------------------------------------------------

    def get(self, server_url: str) -> Entry:
        auths, _ = self._load(create_key=False)
        try:
            return auths[server_url]
        except KeyError:
            raise NotFoundError from None

    def list(self) -> dict[str, str]:
        auths, _ = self._load(create_key=False)
        return {url: entry.username for url, entry in auths.items()}

    def add(self, server_url: str, entry: Entry) -> None:
        def put(auths: Auths) -> None:
            auths[server_url] = entry

        self._update(put, create_key=True)

    def delete(self, server_url: str) -> None:
        def remove(auths: Auths) -> None:
            if auths.pop(server_url, None) is None:
                raise NotFoundError

        if not self.path.exists():
            raise NotFoundError
        self._update(remove, create_key=False)

    # -- reading and writing ------------------------------------------------------------

    def _update(self, change: Callable[[Auths], None], *, create_key: bool) -> None:
        with files.exclusive_lock(self.path):
            auths, key = self._load(create_key=create_key)
            change(auths)
            if key is None:  # no file yet and nothing to write
                return
            files.atomic_write(self.path, sealed.seal(key, _encode(auths)))

    def _load(self, *, create_key: bool) -> tuple[Auths, sealed.SealingKey | None]:
        """The entries and the key to write them back with. With no file: no entries, and a
        fresh key only if ``create_key`` (creating the key file if that is the key)."""
        blob = files.read_optional(self.path)
        if blob is None:
            if not create_key:
                return {}, None
            kdf = sealed.Kdf.SCRYPT if self.passphrase else sealed.Kdf.KEYFILE
            header = sealed.new_header(kdf)
            return {}, sealed.derive(header, self._secret(kdf, create=True))
        try:
            header = sealed.read_header(blob)
            key = sealed.derive(header, self._secret(header.kdf, create=False))
            auths = _decode(sealed.open_blob(key, blob))
        except sealed.FormatError as exc:
            raise StoreError(f"{self.path}: {exc}; it was left as it is") from None
        except sealed.WrongKeyError:
            raise StoreError(self._wrong_key(header.kdf)) from None
        except (sealed.TamperedError, ValueError, KeyError, TypeError):
            raise StoreError(
                f"{self.path} was modified or is corrupt (authentication failed);"
                " it was left as it is"
            ) from None
        return auths, key

    def _secret(self, kdf: sealed.Kdf, *, create: bool) -> bytes:
        if kdf is sealed.Kdf.SCRYPT:
            if not self.passphrase:
                raise StoreError(
                    f"{self.path} is encrypted with a passphrase: set {ENV_PASSPHRASE}"
                )
            return self.passphrase.encode("utf-8", "surrogateescape")
        key = files.read_keyfile(self.keyfile)
        if key is not None:
            return key
        if create:
            return files.create_keyfile(self.keyfile)
        raise StoreError(
            f"key file {self.keyfile} is missing ({ENV_KEYFILE}); {self.path} cannot be read"
        )

    def _wrong_key(self, kdf: sealed.Kdf) -> str:
        if kdf is sealed.Kdf.SCRYPT:
            return f"wrong passphrase for {self.path} ({ENV_PASSPHRASE})"
        return f"key file {self.keyfile} does not open {self.path} ({ENV_KEYFILE})"


def _encode(auths: Auths) -> bytes:
    doc = {
        "auths": {
            url: {"Username": entry.username, "Secret": entry.secret}
            for url, entry in auths.items()
        }
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _decode(plaintext: bytes) -> Auths:
    doc = json.loads(plaintext)
    raw = doc["auths"]
    if not isinstance(raw, dict):
        raise TypeError("auths is not an object")
    return {url: Entry(str(item["Username"]), str(item["Secret"])) for url, item in raw.items()}
