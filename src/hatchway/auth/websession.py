"""Web UI sessions: who a browser is signed in as, and its CSRF token. No web imports.

A session starts after a password sign-in (checked, throttled and audited by the token
service's ``login``). The browser keeps ``hws_`` + 32 random bytes in an ``HttpOnly``
cookie; the store keeps its SHA-256. A session ends when it has not been used for
``idle``, at ``lifetime`` after sign-in, when its owner ends it or signs out, when the
account is disabled, and when the credential it was made with changes: each session
stores an HMAC, keyed by its own secret, of the account's password hash (or htpasswd
line), so a password change, reset or account deletion ends every session at its next
request, wherever it was made.

The principal is looked up again on every request (``Authenticator.resolve``), so a
changed admin flag or group membership applies at once.

CSRF: the token is an HMAC of the session secret (or, before sign-in, of a random
pre-session cookie), so it needs no storage, differs per session, and cannot be made
without the cookie; it is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from hatchway.auth.credentials.pat import new_secret, secret_hash
from hatchway.auth.identity.base import Authenticator, BindsCredentials, ClientInfo
from hatchway.auth.identity.local import account_principal
from hatchway.auth.principal import Principal
from hatchway.metadata import MetadataStore
from hatchway.metadata.accounts import LOCAL_BACKEND
from hatchway.metadata.records import utcnow
from hatchway.metadata.websessions import TOUCH_INTERVAL, WebSession

SESSION_PREFIX = "hws_"
PRE_SESSION_PREFIX = "hwp_"
IDLE = timedelta(hours=2)
LIFETIME = timedelta(hours=12)
KEEP_ENDED = timedelta(days=7)  # ended sessions are forgotten after this (at a sign-in)
_BINDING_CONTEXT = b"hatchway web-session binding\0"
_CSRF_CONTEXT = b"hatchway csrf\0"
_MAX_SECRET = 100


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session and who it stands for now."""

    session: WebSession
    principal: Principal
    secret: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)


def csrf_token(seed: str) -> str:
    """The CSRF token for a session (or pre-session) secret."""
    mac = hmac.new(seed.encode(), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_matches(seed: str | None, presented: str | None) -> bool:
    """Constant-time check of a presented CSRF token against the seed's."""
    if not seed or not presented or len(presented) > _MAX_SECRET:
        return False
    return hmac.compare_digest(csrf_token(seed).encode(), presented.encode())


def new_pre_session() -> str:
    return new_secret(PRE_SESSION_PREFIX)


def _binding(secret: str, credential: bytes) -> str:
    return hmac.new(secret.encode(), _BINDING_CONTEXT + credential, hashlib.sha256).hexdigest()


class WebSessions:
    """Synchronous (SQL): the HTTP layer calls it in a thread."""

    def __init__(
        self,
        store: MetadataStore,
        authenticators: Sequence[Authenticator],
        *,
        idle: timedelta = IDLE,
        lifetime: timedelta = LIFETIME,
    ) -> None:
        self.store = store
        self.authenticators = list(authenticators)
        self.idle = idle
        self.lifetime = lifetime

    def _authenticator(self, backend: str) -> Authenticator | None:
        return next((a for a in self.authenticators if a.backend == backend), None)

    def _current(self, subject: str, backend: str) -> tuple[Principal, bytes] | None:
        """The principal as it is now and its credential (to bind to), or None."""
        if backend == LOCAL_BACKEND:
            account = self.store.accounts.get(subject)
            if (
                account is None
                or account.robot
                or account.disabled
                or account.password_hash is None
            ):
                return None
            return account_principal(account), account.password_hash.encode()
        authenticator = self._authenticator(backend)
        if authenticator is None or not isinstance(authenticator, BindsCredentials):
            return None
        principal = authenticator.resolve(subject)
        credential = authenticator.credential_binding(subject)
        if principal is None or credential is None:
            return None
        return principal, credential

    def start(self, principal: Principal, backend: str, client: ClientInfo) -> SignedIn:
        """A new session for a principal that just signed in with its password."""
        current = self._current(principal.subject, backend)
        if current is None or principal.token_id is not None:
            raise ValueError("only an account with a password can sign in to the web UI")
        secret = new_secret(SESSION_PREFIX)
        self.store.web_sessions.purge(utcnow() - KEEP_ENDED)
        record = self.store.web_sessions.create(
            principal.subject,
            backend=backend,
            session_hash=secret_hash(secret),
            expires_at=utcnow() + self.lifetime,
            binding=_binding(secret, current[1]),
            address=client.address,
            user_agent=client.user_agent,
        )
        return SignedIn(record, current[0], secret)

    def resolve(self, secret: str, client: ClientInfo) -> SignedIn | None:
        """The live session this cookie secret stands for, or None; records the use."""
        if not secret.startswith(SESSION_PREFIX) or len(secret) > _MAX_SECRET:
            return None
        record = self.store.web_sessions.find(secret_hash(secret))
        if record is None or not record.active(self.idle):
            return None
        current = self._current(record.subject, record.backend)
        if (
            current is None
            or record.binding is None
            or not hmac.compare_digest(record.binding, _binding(secret, current[1]))
        ):
            # The account went or its password changed: this session ends for good.
            self.store.web_sessions.revoke(record.id)
            return None
        if (utcnow() - record.last_seen_at).total_seconds() >= TOUCH_INTERVAL:
            self.store.web_sessions.touch(record.id, client.address)  # a write: not each time
        return SignedIn(record, current[0], secret)

    def end(self, secret: str) -> WebSession | None:
        """Sign out: end the session this secret stands for (if it is live)."""
        if not secret.startswith(SESSION_PREFIX) or len(secret) > _MAX_SECRET:
            return None
        record = self.store.web_sessions.find(secret_hash(secret))
        if record is None or not self.store.web_sessions.revoke(record.id):
            return None
        return record

    def sessions(self, subject: str) -> list[WebSession]:
        return self.store.web_sessions.list(subject, idle=self.idle)

    def end_one(self, subject: str, session_id: int) -> bool:
        """End one of ``subject``'s own sessions; False if it has no such live session."""
        return self.store.web_sessions.revoke(session_id, subject)

    def end_others(self, subject: str, keep: int) -> int:
        return self.store.web_sessions.revoke_subject(subject, keep=keep)


__all__ = [
    "IDLE",
    "LIFETIME",
    "SignedIn",
    "WebSessions",
    "csrf_matches",
    "csrf_token",
    "new_pre_session",
]
