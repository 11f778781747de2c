"""The one interface every identity backend implements (local store, htpasswd, later LDAP).

Backends are synchronous: they may run bcrypt or a database query, so the server calls
them through ``asyncio.to_thread``. They answer None for every failure (unknown account,
wrong secret, revoked token) and say why only in their own log, never to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hatchway.auth.principal import Principal


class IdentityUnavailable(Exception):
    """A backend cannot answer now (its directory is down or too slow): the caller gives
    a 503-style error, not a failed login. The message is safe to log, never a secret."""


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a credential came from, for throttling, last-used records and the audit trail."""

    address: str | None = None
    user_agent: str | None = None


class Authenticator(Protocol):
    @property
    def backend(self) -> str:
        """A stable name ("local", "htpasswd") recorded with refresh tokens."""
        ...

    def authenticate(self, username: str, secret: str, client: ClientInfo) -> Principal | None:
        """The principal for these credentials, or None."""
        ...

    def resolve(self, subject: str, token_id: str | None = None) -> Principal | None:
        """The principal as it is now, without a secret (a refresh token was presented).

        None when the account is gone, or when ``token_id`` names a token that is no
        longer active: a refresh token never outlives what it was issued for.
        """
        ...


@runtime_checkable
class BindsCredentials(Protocol):
    """A backend whose credentials change outside hatchway's store (an htpasswd file).

    Its refresh tokens are bound to the credential as it was when they were issued, so
    they end when it changes; the local store revokes them itself on a password change.
    """

    def credential_binding(self, subject: str) -> bytes | None:
        """The subject's credential record as it is now, or None if there is none."""
        ...
