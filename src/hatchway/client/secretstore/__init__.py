"""Where ``docker-credential-hatchway`` keeps secrets: the OS keyring, or an encrypted file.

``HATCHWAY_CREDENTIALS_BACKEND`` picks one (``file`` or ``keyring``). Unset, an existing
credentials file is used, else the OS keyring if it has a real backend, else a new file.
"""

from __future__ import annotations

from hatchway.client.secretstore.base import (
    NOT_FOUND_MESSAGE,
    Entry,
    NotFoundError,
    SecretStore,
    Settings,
    StoreError,
)
from hatchway.client.secretstore.filestore import EncryptedFileStore

__all__ = [
    "NOT_FOUND_MESSAGE",
    "EncryptedFileStore",
    "Entry",
    "NotFoundError",
    "SecretStore",
    "Settings",
    "StoreError",
    "open_store",
]


def open_store(settings: Settings) -> SecretStore:
    """The store ``settings`` select (see the module docstring)."""
    from hatchway.client.secretstore import oskeyring

    lock_path = settings.file.parent / "keyring"
    if settings.backend == "keyring":
        return oskeyring.KeyringStore.open(lock_path)
    if settings.backend == "auto" and not settings.file.exists():
        backend, _ = oskeyring.find_backend()
        if backend is not None:
            return oskeyring.KeyringStore(backend, lock_path)
    return EncryptedFileStore.from_settings(settings)
