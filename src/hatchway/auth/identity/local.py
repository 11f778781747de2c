"""Accounts of the built-in store: a password, or one of the account's live access tokens.

A secret shaped like a token (``hw_`` + 43 characters) is looked up by hash first, so
scripts and robots never pay bcrypt; anything else is checked as the password through
the shared :class:`PasswordVerifier` (bcrypt once, then a short cache; a dummy hash for
unknown accounts and for robots, which have no password).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from hatchway.auth.credentials.passwords import PasswordVerifier
from hatchway.auth.credentials.pat import (
    authenticate_token,
    looks_like_token,
    secret_hash,
    token_principal,
)
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import Kind, Principal
from hatchway.metadata import Account, MetadataStore
from hatchway.metadata.accounts import LOCAL_BACKEND

_MAX_SECRET = 1024
ACCOUNT_TTL = 1.0
_ACCOUNT_CACHE_SIZE = 10_000


class FederatedSource(Protocol):
    """An identity source whose accounts live in this store without a password (LDAP):
    it says what one of their tokens stands for now, or None once the source dropped
    the account. It may raise ``IdentityUnavailable``."""

    def current(self, account: Account, principal: Principal) -> Principal | None: ...


def account_principal(account: Account) -> Principal:
    return Principal(
        subject=account.name,
        kind=Kind.ROBOT if account.robot else Kind.USER,
        groups=account.groups,
        admin=account.admin,
    )


class LocalAuthenticator:
    backend = LOCAL_BACKEND

    def __init__(
        self,
        store: MetadataStore,
        *,
        verifier: PasswordVerifier | None = None,
        account_ttl: float = ACCOUNT_TTL,
        reserved: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self.verifier = verifier or PasswordVerifier()
        self._account_ttl = account_ttl
        self._accounts: dict[str, tuple[float, Account | None]] = {}
        # Is this name also a user of another backend (htpasswd)? Then it is refused here
        # too: one name must not be two identities with two passwords.
        self.reserved = reserved
        # Sources of federated accounts, by ``Account.source``: their tokens are checked
        # here, their passwords by their own backend. Without its source, such an
        # account's tokens stop working.
        self.federated: dict[str, FederatedSource] = {}

    def has_local_account(self, name: str) -> bool:
        """An account whose password this store holds (not a federated one)."""
        account = self._account(name)
        return account is not None and account.source == LOCAL_BACKEND

    def has_account(self, name: str) -> bool:
        return self._account(name) is not None

    def _account(self, name: str) -> Account | None:
        """The account row, remembered for about a second.

        A returning user's login is then a dictionary lookup and an HMAC instead of a
        query: the token service answers thousands of grants a second. A password
        change, admin flag or deletion reaches logins within ``account_ttl``; access
        tokens are looked up on every use, so a revoked one stops at once.
        """
        now = time.monotonic()
        hit = self._accounts.get(name)
        if hit is not None and now - hit[0] < self._account_ttl:
            return hit[1]
        account = self.store.accounts.get(name)
        if len(self._accounts) >= _ACCOUNT_CACHE_SIZE:
            self._accounts.clear()
        self._accounts[name] = (now, account)
        return account

    def cached_account(self, name: str) -> Account | None:
        """The account row as :meth:`_account` remembers it (for the LDAP backend)."""
        return self._account(name)

    def forget(self, name: str) -> None:
        """Drop the remembered row now (this worker changed the password)."""
        self._accounts.pop(name, None)

    def forget_all(self) -> None:
        """Drop every remembered row (an account was disabled or deleted somewhere)."""
        self._accounts.clear()

    def authenticate(self, username: str, secret: str, client: ClientInfo) -> Principal | None:
        if not username or not secret or len(secret) > _MAX_SECRET or len(username) > 255:
            return None
        if self.reserved is not None and self.reserved(username):
            return None  # the other backend logs why
        principal = authenticate_token(self.store, username, secret, client)
        if principal is not None:
            return self._federated(self._account(username), principal)
        if self._disabled_token(username, secret):
            return None  # the real token of a disabled account: no guess, nothing to count
        account = self._account(username)
        if account is not None and account.source != LOCAL_BACKEND:
            return None  # its password is checked by its own backend
        stored = account.password_hash if account is not None else None
        if not self.verifier.verify(username, secret, stored) or account is None:
            return None
        if account.disabled:
            return None
        return account_principal(account)

    def _disabled_token(self, username: str, secret: str) -> bool:
        if not looks_like_token(secret):
            return False
        found = self.store.tokens.find_active(secret_hash(secret))
        return found is not None and found[1].disabled and found[1].name == username

    def resolve(self, subject: str, token_id: str | None = None) -> Principal | None:
        if self.reserved is not None and self.reserved(subject):
            return None
        account = self.store.accounts.get(subject)
        if account is None or account.disabled:
            return None
        if token_id is None:
            if account.robot or account.source != LOCAL_BACKEND:
                return None
            return account_principal(account)
        if not token_id.isdigit():
            return None
        token = self.store.tokens.get(int(token_id))
        if token is None or not token.active() or token.account != account.name:
            return None
        return self._federated(account, token_principal(token, account))

    def _federated(self, account: Account | None, principal: Principal) -> Principal | None:
        """A federated account's token: as its source says now (groups, admin, alive)."""
        if account is None or account.source == LOCAL_BACKEND:
            return principal
        source = self.federated.get(account.source)
        return source.current(account, principal) if source is not None else None
