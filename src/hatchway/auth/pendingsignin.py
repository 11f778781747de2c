"""A web sign-in half done: the first step (password, or an OIDC sign-in) passed, and the
account has to give its second factor (``verify``) or, under
``identity.twofactor.required``, set one up (``enrol``) before it gets a session.

The browser holds ``hw2_`` + 32 random bytes in an ``HttpOnly`` cookie; the store keeps
its SHA-256, who signed in, how, and where to go afterwards. It lives five minutes
(``verify``) or fifteen (``enrol``: scanning a code and typing it takes longer), and is
single-use: :meth:`PendingSignIns.take` marks it used atomically, so the same cookie
cannot finish a sign-in twice. No web imports; synchronous (SQL): call it in a thread.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from hatchway.auth.credentials.pat import new_secret, secret_hash
from hatchway.metadata import MetadataStore
from hatchway.metadata.pendingsignins import PendingSignIn
from hatchway.metadata.records import utcnow

PREFIX = "hw2_"
VERIFY_TTL = timedelta(minutes=5)
ENROL_TTL = timedelta(minutes=15)
_MAX_SECRET = 100
Purpose = Literal["verify", "enrol"]


class PendingSignIns:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def begin(self, subject: str, backend: str, purpose: Purpose, *, via: str, target: str) -> str:
        """A new pending sign-in; the secret for the browser's cookie."""
        secret = new_secret(PREFIX)
        ttl = ENROL_TTL if purpose == "enrol" else VERIFY_TTL
        self.store.pending_signins.create(
            subject,
            secret_hash=secret_hash(secret),
            backend=backend,
            purpose=purpose,
            via=via,
            target=target,
            expires_at=utcnow() + ttl,
        )
        return secret

    def find(self, secret: str | None, purpose: Purpose) -> PendingSignIn | None:
        """The live pending sign-in of this cookie for this step, or None."""
        if not secret or not secret.startswith(PREFIX) or len(secret) > _MAX_SECRET:
            return None
        found = self.store.pending_signins.find(secret_hash(secret))
        if found is None or found.purpose != purpose:
            return None
        return found

    def take(self, pending: PendingSignIn) -> bool:
        """Use it up (once); False if it was used or expired meanwhile."""
        return self.store.pending_signins.take(pending.id)

    def cancel(self, secret: str | None) -> None:
        if secret and secret.startswith(PREFIX) and len(secret) <= _MAX_SECRET:
            self.store.pending_signins.drop(secret_hash(secret))


__all__ = ["ENROL_TTL", "VERIFY_TTL", "PendingSignIns", "Purpose"]
