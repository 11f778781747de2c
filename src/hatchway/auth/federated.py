"""Token grants for workload identities: an ID token in, a short registry token out.

The ID token (a CI job's or a pod's, verified by
:class:`~hatchway.auth.identity.federation.Federation`) acts as its entry's robot account:
the token carries what was asked for and what that robot's access rules allow, expires no
later than the ID token (nor the configured ``auth.token.expiration``), and comes without
a refresh token, so nothing outlives the identity the platform gave.

ID tokens are never throttled, like access tokens: a signature cannot be guessed, so a
refused one counts against no account or address, and a robot's other credentials (its
access tokens) keep working however many bad ID tokens name it. Every grant and refusal
is audited with the issuer, the subject and the entry; never the token.
"""

from __future__ import annotations

import logging
import time

from hatchway.auth.access import Access, ScopeError, format_scopes, parse_scopes
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.identity.federation import (
    FederatedIdentity,
    Federation,
    FederationRefused,
    Trusted,
)
from hatchway.auth.identity.local import account_principal
from hatchway.auth.policy.engine import granted
from hatchway.auth.service import TokenRequestError, TokenResponse, TokenService
from hatchway.config.identity_federation import FederationEntry
from hatchway.config.model import Config
from hatchway.errors import ConfigError
from hatchway.metadata import Account, MetadataStore
from hatchway.metadata.engine import database_dsn
from hatchway.metadata.records import AuditEvent
from hatchway.observability import metrics

log = logging.getLogger("hatchway.auth.federation")

ACCOUNT_TTL = 1.0  # an account row is remembered this long (a deleted robot stops within it)
_CACHE_SIZE = 1024


class FederatedGrants:
    """Grants for ID tokens, through the token service's issuer, policy and audit."""

    def __init__(
        self, federation: Federation, service: TokenService, *, account_ttl: float = ACCOUNT_TTL
    ) -> None:
        self.federation = federation
        self.service = service
        self._ttl = account_ttl
        self._accounts: dict[str, tuple[float, Account | None]] = {}

    def recognizes(self, secret: str) -> bool:
        """Is ``secret`` a JWT from a configured issuer (else: an ordinary password)?"""
        return self.federation.issuer_of(secret) is not None

    def _account(self, name: str) -> Account | None:
        now = time.monotonic()
        hit = self._accounts.get(name)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        account = self.service.store.accounts.get(name)
        if len(self._accounts) >= _CACHE_SIZE:
            self._accounts.clear()
        self._accounts[name] = (now, account)
        return account

    def grant(
        self, id_token: str, scopes: list[str], client: ClientInfo, *, method: str
    ) -> TokenResponse:
        """A registry token for the ID token's robot; :class:`TokenRequestError` (401, or
        400 for a malformed scope) otherwise. Synchronous: may wait for a key fetch."""
        try:
            requested = parse_scopes(scopes)
        except ScopeError as exc:
            raise TokenRequestError("invalid_scope", str(exc)) from None
        try:
            identity = self.federation.verify(id_token)
        except FederationRefused as exc:
            self._refused(exc.reason, client, method, exc.issuer, exc.subject, exc.entry)
            raise TokenRequestError(_error(method), exc.reason, 401) from None
        account = self._account(identity.account)
        if account is None or not account.robot:
            log.warning(
                "federation entry %s maps to %s, which is not a robot account",
                identity.trusted.label,
                identity.account,
            )
            reason = "no robot account for this identity"
            self._refused(
                reason, client, method, identity.issuer, identity.subject, identity.trusted
            )
            raise TokenRequestError(_error(method), reason, 401)
        return self._mint(identity, account, requested, client, method)

    def _mint(
        self,
        identity: FederatedIdentity,
        account: Account,
        requested: list[Access],
        client: ClientInfo,
        method: str,
    ) -> TokenResponse:
        service = self.service
        principal = account_principal(account)
        grants = service.policy.authorize(principal, requested)
        allowed = granted(grants)
        try:
            issued = service.issuer.mint(
                principal.subject, service.service, allowed, not_after=identity.expires_at
            )
        except ValueError:  # accepted within the leeway, but nothing of it is left
            reason = "the ID token has expired"
            self._refused(
                reason, client, method, identity.issuer, identity.subject, identity.trusted
            )
            raise TokenRequestError(_error(method), reason, 401) from None
        denied = [g.reason for g in grants if g.access.actions != g.requested.actions]
        metrics.auth_attempt("federated", "success")
        metrics.token_granted(method, partial=bool(denied))
        service.audit(
            AuditEvent(
                "token",
                "success" if not denied else "partial",
                principal.subject,
                client.address,
                client.user_agent,
                scopes_requested=tuple(a.scope() for a in requested),
                scopes_granted=tuple(a.scope() for a in allowed),
                detail={
                    "method": method,
                    "kind": str(principal.kind),
                    "federation": identity.trusted.label,
                    "issuer": identity.issuer,
                    "subject": identity.subject,
                    "denied": denied,
                },
            )
        )
        return TokenResponse(
            issued.token, issued.expires_in, issued.issued_at, format_scopes(allowed)
        )

    def _refused(
        self,
        reason: str,
        client: ClientInfo,
        method: str,
        issuer: str | None,
        subject: str | None,
        entry: Trusted | None,
    ) -> None:
        """Audit a refusal; ``entry`` is the one the token matched, or claimed to."""
        metrics.auth_attempt("federated", "failure")
        account = entry.entry.account if entry is not None else self._only_account(issuer)
        detail: dict[str, object] = {
            "method": method,
            "reason": reason,
            "issuer": issuer,
            "subject": subject,
        }
        if entry is not None:
            detail["federation"] = entry.label
        event = AuditEvent(
            "login", "failure", account, client.address, client.user_agent, detail=detail
        )
        self.service.audit(event)

    def _only_account(self, issuer: str | None) -> str | None:
        """The robot every entry of ``issuer`` maps to, if it is just one (for the audit)."""
        names = {t.entry.account for t in self.federation.candidates(issuer or "")}
        return names.pop() if len(names) == 1 else None


def _error(method: str) -> str:
    # RFC 8693 section 2.2.2: an unacceptable subject_token is "invalid_request"; a
    # password grant's bad credentials are "invalid_grant" (RFC 6749 section 5.2).
    return "invalid_request" if method == "token-exchange" else "invalid_grant"


def federation_entries(config: Config) -> list[FederationEntry]:
    return config.identity.federation if config.identity is not None else []


def check_federation(config: Config) -> None:
    """At start: federation needs the built-in token service; each entry's account should
    be a robot (a missing one is a warning: it may be added while hatchway runs; a person's
    account is an error: an ID token must never act as a person). JWKS files must load."""
    entries = federation_entries(config)
    if not entries:
        return
    token = config.auth.token if config.auth is not None else None
    if token is None or token.external:
        raise ConfigError(
            "identity.federation: needs the built-in token service (auth.token without "
            "rootcertbundle or jwks)"
        )
    try:
        Federation(entries)  # reads JWKS files; URLs are fetched later, by each worker
    except ValueError as exc:
        raise ConfigError(f"identity.federation: {exc}") from None
    store = MetadataStore(database_dsn(config))
    try:
        for index, entry in enumerate(entries):
            account = store.accounts.get(entry.account)
            where = f"identity.federation[{index}].account"
            if account is None:
                log.warning(
                    "%s: no account %s yet; its ID tokens are refused until it exists "
                    "(hatchway user add-robot %s)",
                    where,
                    entry.account,
                    entry.account,
                )
            elif not account.robot:
                raise ConfigError(
                    f"{where}: {entry.account} is a person's account; federated identities "
                    "act as robot accounts only (hatchway user add-robot NAME)"
                )
    finally:
        store.dispose()


def federated_grants(config: Config, service: TokenService) -> FederatedGrants | None:
    """For one worker (after fork): the grants, with every issuer's keys being fetched."""
    entries = federation_entries(config)
    if not entries:
        return None
    federation = Federation(entries)
    federation.start()
    return FederatedGrants(federation, service)
