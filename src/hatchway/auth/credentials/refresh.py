"""OAuth2 refresh tokens (``access_type=offline``; ``grant_type=refresh_token``).

Long-lived and revocable, not rotated on use (Docker keeps the first one it gets). The
store keeps only a SHA-256. Redeeming asks the backend who the subject is *now*
(``Authenticator.resolve``), so a deleted account, a changed password or a revoked or
expired access token behind the login ends the refresh token too; a token got through a
PAT keeps that PAT's scopes. Local accounts: the store revokes the refresh tokens with a
password change. htpasswd users (``BindsCredentials``): each token stores an HMAC of the
user's ``user:hash`` line keyed by the token's own secret (useless without the token),
and a token whose line has changed or gone is revoked at its next use.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import timedelta

from hatchway.auth.credentials.pat import new_secret, secret_hash
from hatchway.auth.identity.base import Authenticator, BindsCredentials, ClientInfo
from hatchway.auth.principal import Principal
from hatchway.metadata import MetadataStore, RefreshToken
from hatchway.metadata.records import utcnow
from hatchway.metadata.tokens import USE_RECORD_INTERVAL

REFRESH_PREFIX = "hwr_"
DEFAULT_LIFETIME = timedelta(days=90)
_BINDING_CONTEXT = b"hatchway refresh-token binding\0"

log = logging.getLogger("hatchway.auth")


def _binding(secret: str, credential: bytes) -> str:
    message = _BINDING_CONTEXT + credential
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _binder(authenticators: Sequence[Authenticator], backend: str) -> BindsCredentials | None:
    for authenticator in authenticators:
        if authenticator.backend == backend:
            return authenticator if isinstance(authenticator, BindsCredentials) else None
    return None


def issue_refresh_token(
    store: MetadataStore,
    principal: Principal,
    *,
    backend: str,
    client_id: str,
    lifetime: timedelta | None = DEFAULT_LIFETIME,
    authenticators: Sequence[Authenticator] = (),
    client: ClientInfo | None = None,
) -> tuple[RefreshToken, str]:
    """Store a new refresh token for ``principal``; returns the record and the secret.

    ``authenticators``: where to find ``backend``, to bind the token to the credential
    if the backend needs it; ``client``: where the login came from (``session list``).
    """
    if principal.anonymous:
        raise ValueError("anonymous requests get no refresh token")
    secret = new_secret(REFRESH_PREFIX)
    binder = _binder(authenticators, backend)
    credential = binder.credential_binding(principal.subject) if binder else None
    record = store.refresh_tokens.create(
        principal.subject,
        backend=backend,
        client_id=client_id,
        token_hash=secret_hash(secret),
        access_token_id=int(principal.token_id) if principal.token_id else None,
        expires_at=utcnow() + lifetime if lifetime is not None else None,
        binding=_binding(secret, credential) if credential is not None else None,
        created_addr=client.address if client is not None else None,
    )
    return record, secret


def redeem_refresh_token(
    store: MetadataStore, secret: str, authenticator: Authenticator, client: ClientInfo
) -> Principal | None:
    """The principal a live refresh token stands for, or None; records the use."""
    if not secret.startswith(REFRESH_PREFIX) or len(secret) > 100:
        return None
    record = store.refresh_tokens.find_active(secret_hash(secret))
    if record is None or record.backend != authenticator.backend:
        return None
    if isinstance(authenticator, BindsCredentials) and not _still_bound(
        record, secret, authenticator.credential_binding(record.subject)
    ):
        # The password changed (or the user went): this session ends now, for good.
        store.refresh_tokens.revoke(record.id)
        log.info(
            "refresh token %d of %s (%s) revoked: the credential it was issued for changed",
            record.id,
            record.subject,
            record.backend,
        )
        return None
    token_id = str(record.access_token_id) if record.access_token_id is not None else None
    principal = authenticator.resolve(record.subject, token_id)
    if principal is None:
        return None
    last = record.last_used_at
    if last is None or (utcnow() - last).total_seconds() >= USE_RECORD_INTERVAL:
        store.refresh_tokens.touch(record.id, client.address)
    return principal


def _still_bound(record: RefreshToken, secret: str, credential: bytes | None) -> bool:
    """Was the token issued for this credential? (Unbound tokens, from before binding
    existed, cannot tell: they count as changed.)"""
    if credential is None or record.binding is None:
        return False
    return hmac.compare_digest(record.binding, _binding(secret, credential))
