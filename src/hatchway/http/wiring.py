"""Build the gate and the token service from the configuration, for one worker.

Modes (``auth:``, as distribution's config.yml):
- none (no section): everything allowed; the server warns at start.
- ``token`` without ``rootcertbundle``/``jwks``: the built-in token service; accounts in
  the metadata database, plus the ``htpasswd`` file when one is configured too.
- ``token`` with ``rootcertbundle`` or ``jwks``: trust an external token issuer.
- ``htpasswd`` alone: HTTP Basic on every request, decided by the access rules.

Where access rules decide (built-in tokens, htpasswd) they are the config file's, then the
database's (``hatchway access rule``), kept current by a :class:`PolicySource`; audit events
go to the database there, and only to the log in the other modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hatchway.audit.sink import AuditSink
from hatchway.auth.checkcache import CheckCache
from hatchway.auth.credentials.ratelimit import Limiter
from hatchway.auth.federated import FederatedGrants, federated_grants
from hatchway.auth.gate import BasicGate, Gate, OpenGate, TokenGate
from hatchway.auth.identity.base import Authenticator
from hatchway.auth.identity.htpasswd import HtpasswdAuthenticator
from hatchway.auth.identity.local import LocalAuthenticator
from hatchway.auth.policy import Policy, Rule, load_rules
from hatchway.auth.policy.source import PolicySource, database_rules
from hatchway.auth.service import TokenService
from hatchway.auth.tokens import KeyStore, TokenIssuer, TokenVerifier, key_directory
from hatchway.auth.tokens.dbkeys import key_backend
from hatchway.auth.tokens.external import external_verifier
from hatchway.config import load as config_load
from hatchway.config.model import Config
from hatchway.http.identity import ldap_backend
from hatchway.http.identity_oidc import oidc_backend
from hatchway.metadata import MetadataStore
from hatchway.metadata.engine import database_dsn
from hatchway.shared import revocations
from hatchway.shared.redis import attempt_store


@dataclass
class AuthParts:
    gate: Gate
    realm: str | None = None
    token_service: TokenService | None = None
    jwks: Callable[[], dict[str, object]] | None = None
    # Registry-side audit events (push, pull, delete, refusals).
    audit: AuditSink | None = None
    policy: PolicySource | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    federation: FederatedGrants | None = None

    def reload(self) -> None:
        """SIGHUP: re-read the access rules (returns at once; a thread does the work)."""
        if self.policy is not None:
            self.policy.reload()

    def close(self) -> None:
        for close in self.closers:
            close()


def policy_for(config: Config) -> Policy:
    """The config file's rules alone (the database's come from :func:`policy_source`)."""
    return Policy(load_rules(config.access))


def uses_policy(config: Config) -> bool:
    """Do access rules decide here? Not with no auth, nor with an external token issuer."""
    if config.auth_mode == "htpasswd":
        return True
    token = config.auth.token if config.auth is not None else None
    return token is not None and not token.external


def check_policy(config: Config) -> None:
    """Compile every rule, the config file's and the database's, or raise PolicyError."""
    policy_for(config)
    if not uses_policy(config):
        return
    store = MetadataStore(database_dsn(config))
    try:
        database_rules(store.rules.list())
    finally:
        store.dispose()


def policy_source(config: Config, config_path: Path | None, store: MetadataStore) -> PolicySource:
    """Config rules (re-read from ``config_path`` when it changes), then the database's."""

    def reread() -> list[Rule]:
        assert config_path is not None
        return load_rules(config_load.load(config_path).access)

    return PolicySource(
        load_rules(config.access),
        path=config_path,
        reread=reread if config_path is not None else None,
        store=store.rules,
    )


def key_store(config: Config) -> KeyStore:
    assert config.auth is not None
    assert config.auth.token is not None
    token = config.auth.token
    # Old keys must verify for at least the longest token lifetime after a rotation.
    overlap = max(3600, token.expiration + 60)
    # Shared by replicas through the database when it is PostgreSQL (auth/tokens/dbkeys.py).
    backend = key_backend(config)
    return KeyStore(key_directory(config), token.signingalgorithm, overlap=overlap, backend=backend)


def _log_only() -> AuthParts:
    sink = AuditSink(None)
    return AuthParts(OpenGate(), audit=sink, closers=[sink.close])


def build_auth(config: Config, config_path: Path | None = None) -> AuthParts:
    """Everything auth for one worker (call it after fork: it starts threads)."""
    mode = config.auth_mode
    if mode == "none":
        return _log_only()
    assert config.auth is not None
    htpasswd = config.auth.htpasswd
    token = config.auth.token
    if token is not None and token.external:
        verifier = external_verifier(
            token.issuer,
            token.service,
            rootcertbundle=Path(token.rootcertbundle) if token.rootcertbundle else None,
            jwks=token.jwks,
            jwks_insecure=token.jwksinsecure,
        )
        parts = _log_only()
        parts.gate, parts.realm = TokenGate(verifier, token.service), token.realm
        return parts
    store = MetadataStore(database_dsn(config))
    source = policy_source(config, config_path, store)
    sink = AuditSink(store.audit)
    source.start()
    # Throttle counters: the database's, or Redis's when configured (lost on a flush).
    attempts, close_attempts = attempt_store(config.redis, store.attempts)
    closers = [source.close, sink.close, close_attempts, store.dispose]
    if mode == "htpasswd":
        assert htpasswd is not None
        authenticator = HtpasswdAuthenticator(Path(htpasswd.path))
        basic: list[Authenticator] = [authenticator]
        directory = ldap_backend(config, store, reserved=authenticator.has_user, audit=sink.record)
        if directory is not None:
            basic.append(directory)
            closers.insert(0, directory.close)
        gate = BasicGate(basic, source, Limiter(attempts))
        return AuthParts(gate, realm=htpasswd.realm, audit=sink, policy=source, closers=closers)
    assert token is not None
    keys = key_store(config)
    local = LocalAuthenticator(store)
    authenticators: list[Authenticator] = [local]
    from_file: HtpasswdAuthenticator | None = None
    if htpasswd is not None:
        # A name in both is refused by both (the htpasswd backend logs why).
        from_file = HtpasswdAuthenticator(Path(htpasswd.path), reserved=local.has_account)
        local.reserved = from_file.has_user
        authenticators.append(from_file)
    # The directory after the local store: a local name is never looked up there.
    reserved: Callable[[str], bool] = local.has_local_account
    if from_file is not None:
        reserved = _either(local.has_local_account, from_file.has_user)
    directory = ldap_backend(
        config, store, reserved=reserved, audit=sink.record, accounts=local.cached_account
    )
    if directory is not None:
        authenticators.append(directory)
        local.federated[directory.backend] = directory
        closers.insert(0, directory.close)
    sso = oidc_backend(  # the store's own names it checks itself (not through the cache)
        config,
        store,
        reserved=from_file.has_user if from_file is not None else None,
        audit=sink.record,
        accounts=local.cached_account,
    )
    if sso is not None:  # identity.oidc: web UI sign-in; its accounts' tokens re-checked
        authenticators.append(sso)
        local.federated[sso.backend] = sso
    service = TokenService(
        TokenIssuer(keys, token.issuer, token.expiration),
        token.service,
        authenticators,
        source,
        store,
        sink.record,
        Limiter(attempts),
    )
    verifier = TokenVerifier(keys, token.issuer, token.service)
    return AuthParts(
        _token_gate(config, store, local, from_file, closers, verifier, token.service),
        realm=token.realm,
        token_service=service,
        jwks=keys.jwks,
        audit=sink,
        policy=source,
        closers=closers,
        federation=federated_grants(config, service),
    )


def _token_gate(
    config: Config,
    store: MetadataStore,
    local: LocalAuthenticator,
    from_file: HtpasswdAuthenticator | None,
    closers: list[Callable[[], None]],
    verifier: TokenVerifier,
    service: str,
) -> TokenGate:
    """The gate with its revocation and disabled-account answers cached, forgotten at
    once on any replica's revocation (Redis pub/sub)."""
    caches: list[CheckCache] = []
    ttl, close_bus = revocations.wire(config.redis, store.db, lambda: _forget(caches, local))
    closers.insert(0, close_bus)
    caches += [CheckCache(ttl), CheckCache(ttl)]
    revoked = _revocation_check(store, caches[0])
    refused = account_refusal_check(
        store, from_file.has_user if from_file is not None else None, caches[1]
    )
    return TokenGate(verifier, service, revoked, refused)


def _either(first: Callable[[str], bool], second: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda name: first(name) or second(name)


def _forget(caches: list[CheckCache], local: LocalAuthenticator) -> None:
    for cache in caches:
        cache.clear()
    local.forget_all()


def _revocation_check(
    store: MetadataStore, cache: CheckCache | None = None
) -> Callable[[str], bool]:
    """Is the access token a JWT was minted from revoked? Cached briefly: revocation
    takes effect for issued JWTs within seconds (at once with Redis: the cache is
    cleared by every revocation), without a query per request."""
    answers = cache or CheckCache()

    def lookup(token_id: str) -> bool:
        token = store.tokens.get(int(token_id)) if token_id.isdigit() else None
        return token is None or not token.active()

    return lambda token_id: answers.answer(token_id, lambda: lookup(token_id))


def account_refusal_check(
    store: MetadataStore,
    other_backend: Callable[[str], bool] | None = None,
    cache: CheckCache | None = None,
) -> Callable[[str], bool]:
    """Is the subject of an issued JWT disabled, or deleted (in no backend any more)?
    Cached as :func:`_revocation_check`: a disabled account's registry tokens stop
    within seconds (at once with Redis), without a query per request."""
    answers = cache or CheckCache()

    def lookup(subject: str) -> bool:
        account = store.accounts.get(subject)
        if account is not None:
            return account.disabled
        return other_backend is None or not other_backend(subject)

    return lambda subject: answers.answer(subject, lambda: lookup(subject))
