"""OAuth2 refresh tokens (``access_type=offline``; ``grant_type=refresh_token``).

Long-lived and revocable, not rotated on use (Docker keeps the first one it gets). The
store keeps only a SHA-256. Redeeming asks the backend who the subject is *now*
(``Authenticator.resolve``), so a deleted account, a changed password (local accounts:
the store revokes the refresh tokens) or a revoked or expired access token behind the
login ends the refresh token too; a token got through a PAT keeps that PAT's scopes.
"""

from __future__ import annotations

from datetime import timedelta

from hatchway.auth.credentials.pat import new_secret, secret_hash
from hatchway.auth.identity.base import Authenticator, ClientInfo
from hatchway.auth.principal import Principal
from hatchway.metadata import MetadataStore, RefreshToken
from hatchway.metadata.records import utcnow
from hatchway.metadata.tokens import USE_RECORD_INTERVAL

REFRESH_PREFIX = "hwr_"
DEFAULT_LIFETIME = timedelta(days=90)


def issue_refresh_token(
    store: MetadataStore,
    principal: Principal,
    *,
    backend: str,
    client_id: str,
    lifetime: timedelta | None = DEFAULT_LIFETIME,
) -> tuple[RefreshToken, str]:
    """Store a new refresh token for ``principal``; returns the record and the secret."""
    if principal.anonymous:
        raise ValueError("anonymous requests get no refresh token")
    secret = new_secret(REFRESH_PREFIX)
    record = store.refresh_tokens.create(
        principal.subject,
        backend=backend,
        client_id=client_id,
        token_hash=secret_hash(secret),
        access_token_id=int(principal.token_id) if principal.token_id else None,
        expires_at=utcnow() + lifetime if lifetime is not None else None,
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
    token_id = str(record.access_token_id) if record.access_token_id is not None else None
    principal = authenticator.resolve(record.subject, token_id)
    if principal is None:
        return None
    last = record.last_used_at
    if last is None or (utcnow() - last).total_seconds() >= USE_RECORD_INTERVAL:
        store.refresh_tokens.touch(record.id, client.address)
    return principal
