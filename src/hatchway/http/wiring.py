"""Build the gate and the token service from the configuration, for one worker.

Modes (``auth:``, as distribution's config.yml):
- none (no section): everything allowed; the server warns at start.
- ``token`` without ``rootcertbundle``/``jwks``: the built-in token service; accounts in
  the metadata database, plus the ``htpasswd`` file when one is configured too.
- ``token`` with ``rootcertbundle`` or ``jwks``: trust an external token issuer.
- ``htpasswd`` alone: HTTP Basic on every request, decided by the access rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hatchway.audit.sink import AuditSink
from hatchway.auth.gate import BasicGate, Gate, OpenGate, TokenGate
from hatchway.auth.identity.base import Authenticator
from hatchway.auth.identity.htpasswd import HtpasswdAuthenticator
from hatchway.auth.identity.local import LocalAuthenticator
from hatchway.auth.policy import Policy, load_rules
from hatchway.auth.service import TokenService
from hatchway.auth.tokens import KeyStore, TokenIssuer, TokenVerifier, key_directory
from hatchway.auth.tokens.external import external_verifier
from hatchway.config.model import Config
from hatchway.metadata import MetadataStore
from hatchway.metadata.engine import database_dsn


@dataclass
class AuthParts:
    gate: Gate
    realm: str | None = None
    token_service: TokenService | None = None
    jwks: Callable[[], dict[str, object]] | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()


def policy_for(config: Config) -> Policy:
    return Policy(load_rules(config.access))


def key_store(config: Config) -> KeyStore:
    assert config.auth is not None
    assert config.auth.token is not None
    token = config.auth.token
    # Old keys must verify for at least the longest token lifetime after a rotation.
    overlap = max(3600, token.expiration + 60)
    return KeyStore(key_directory(config), token.signingalgorithm, overlap=overlap)


def build_auth(config: Config) -> AuthParts:
    mode = config.auth_mode
    if mode == "none":
        return AuthParts(OpenGate())
    assert config.auth is not None
    policy = policy_for(config)
    htpasswd = config.auth.htpasswd
    if mode == "htpasswd":
        assert htpasswd is not None
        authenticator = HtpasswdAuthenticator(Path(htpasswd.path))
        return AuthParts(BasicGate([authenticator], policy), realm=htpasswd.realm)
    token = config.auth.token
    assert token is not None
    if token.external:
        verifier = external_verifier(
            token.issuer,
            token.service,
            rootcertbundle=Path(token.rootcertbundle) if token.rootcertbundle else None,
            jwks=token.jwks,
        )
        return AuthParts(TokenGate(verifier, token.service), realm=token.realm)
    store = MetadataStore(database_dsn(config))
    keys = key_store(config)
    authenticators: list[Authenticator] = [LocalAuthenticator(store)]
    if htpasswd is not None:
        authenticators.append(HtpasswdAuthenticator(Path(htpasswd.path)))
    sink = AuditSink(store.audit)
    service = TokenService(
        TokenIssuer(keys, token.issuer, token.expiration),
        token.service,
        authenticators,
        policy,
        store,
        sink.record,
    )
    verifier = TokenVerifier(keys, token.issuer, token.service)
    revoked = _revocation_check(store)
    return AuthParts(
        TokenGate(verifier, token.service, revoked),
        realm=token.realm,
        token_service=service,
        jwks=keys.jwks,
        closers=[sink.close, store.dispose],
    )


def _revocation_check(store: MetadataStore) -> Callable[[str], bool]:
    """Is the access token a JWT was minted from revoked? Cached briefly: revocation
    takes effect for issued JWTs within seconds, without a query per request."""
    import time

    cache: dict[str, tuple[float, bool]] = {}

    def revoked(token_id: str) -> bool:
        now = time.monotonic()
        hit = cache.get(token_id)
        if hit is not None and now - hit[0] < 5.0:
            return hit[1]
        token = store.tokens.get(int(token_id)) if token_id.isdigit() else None
        answer = token is None or not token.active()
        if len(cache) > 10_000:
            cache.clear()
        cache[token_id] = (now, answer)
        return answer

    return revoked
