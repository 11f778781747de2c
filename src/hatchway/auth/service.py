"""The token service: authenticate -> authorize -> mint (Docker token spec + OAuth2 form).

Synchronous (bcrypt and SQL); the HTTP layer runs it in a thread. Errors carry the
OAuth2 error code and a message safe to show; which of user or password was wrong is
never told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from hatchway.auth.access import Access, ScopeError, format_scopes, parse_scopes
from hatchway.auth.credentials.pat import looks_like_token, secret_hash
from hatchway.auth.credentials.ratelimit import Limiter, Throttled
from hatchway.auth.credentials.refresh import issue_refresh_token, redeem_refresh_token
from hatchway.auth.identity.base import Authenticator, ClientInfo, IdentityUnavailable
from hatchway.auth.policy.engine import Policy, granted
from hatchway.auth.policy.source import PolicyProvider, provider
from hatchway.auth.principal import Principal
from hatchway.auth.tokens.jwt import TokenIssuer
from hatchway.metadata import MetadataStore
from hatchway.metadata.records import AuditEvent
from hatchway.observability import metrics

log = logging.getLogger("hatchway.auth")
# How long a client should wait when an identity source (the directory) is unavailable.
UNAVAILABLE_RETRY = 5.0


def credential_kind(
    principal: Principal | None, unguessable: bool, backend: str | None = None
) -> metrics.AuthKind:
    """For metrics: an access token (``hw_``), an LDAP bind (backend ``ldap``) or a
    password. Without a principal (failed), the secret's shape decides."""
    if principal is not None:
        if principal.token_scopes is not None:
            return "pat"
        return "ldap" if backend == "ldap" else "password"
    return "pat" if unguessable else "password"


class TokenRequestError(Exception):
    """An OAuth2-style failure: ``error`` code, safe ``description``, HTTP status."""

    def __init__(
        self, error: str, description: str, status: int = 400, retry_after: float | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after


class SecondFactorRefusal(TokenRequestError):
    """The password was right, but this account may not sign in with it alone here."""

    def __init__(self, description: str) -> None:
        super().__init__("invalid_grant", description, 401)


@dataclass(frozen=True, slots=True)
class TokenResponse:
    token: str
    expires_in: int
    issued_at: datetime
    scope: str
    refresh_token: str | None = None

    def as_dict(self, *, oauth: bool = False) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.token,
            "expires_in": self.expires_in,
            "issued_at": self.issued_at.isoformat().replace("+00:00", "Z"),
        }
        if not oauth:
            body["token"] = self.token
        else:
            body["token_type"] = "Bearer"  # noqa: S105 - the OAuth2 token type, no secret
            body["scope"] = self.scope
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


class TokenService:
    """Grants tokens; ``policy`` may be a provider (a ``PolicySource``), asked per grant so
    reloaded access rules apply to the next token."""

    def __init__(
        self,
        issuer: TokenIssuer,
        service: str,
        authenticators: Sequence[Authenticator],
        policy: Policy | PolicyProvider,
        store: MetadataStore,
        audit: Callable[[AuditEvent], None],
        limiter: Limiter | None = None,
    ) -> None:
        self.issuer = issuer
        self.service = service
        self.authenticators = list(authenticators)
        self._policy = provider(policy)
        self.store = store
        self.audit = audit
        self.limiter = limiter or Limiter(store.attempts)
        # Why a password sign-in is refused (two-factor rule), or None: auth.twofactor.
        self.password_rule: Callable[[Principal], str | None] | None = None

    @property
    def policy(self) -> Policy:
        """The access policy in force now."""
        return self._policy()

    def _audit(self, event: AuditEvent) -> None:
        self.audit(event)

    def check_service(self, service: str | None) -> None:
        if service and service != self.service:
            raise TokenRequestError("invalid_request", f"unknown service {service[:100]!r}")

    def login(
        self,
        username: str,
        password: str,
        client: ClientInfo,
        *,
        second_factor_exempt: bool = False,
    ) -> tuple[Principal, str]:
        """The principal for a username and password (or access token), and its backend.

        A password sign-in that the two-factor rule refuses raises
        :class:`SecondFactorRefusal`, unless ``second_factor_exempt`` (the enrolment
        endpoints, which must stay open to an account that has to enrol).
        """

        def authenticate() -> tuple[Principal, str] | None:
            for authenticator in self.authenticators:
                principal = authenticator.authenticate(username, password, client)
                if principal is not None:
                    return principal, authenticator.backend
            return None

        unguessable = looks_like_token(password)
        try:
            found = self.limiter.login(
                username, client.address, authenticate, unguessable=unguessable
            )
        except Throttled as exc:
            metrics.auth_attempt(credential_kind(None, unguessable), "throttled")
            self._audit(self._login_event(username, client, "throttled"))
            raise TokenRequestError(
                "too_many_requests", "too many failed logins; try again later", 429, exc.wait
            ) from None
        except IdentityUnavailable as exc:
            raise self._unavailable("login", username, client, exc) from None
        if found is None:
            metrics.auth_attempt(credential_kind(None, unguessable), "failure")
            self._audit(self._login_event(username, client, "failure"))
            raise TokenRequestError("invalid_grant", "incorrect username or password", 401)
        if self.password_rule is not None and not second_factor_exempt:
            refusal = self.password_rule(found[0])
            if refusal is not None:
                metrics.auth_attempt(credential_kind(found[0], unguessable, found[1]), "failure")
                self._audit(
                    AuditEvent(
                        "login",
                        "denied",
                        username[:255],
                        client.address,
                        client.user_agent,
                        detail={"reason": "second factor"},
                    )
                )
                raise SecondFactorRefusal(refusal)
        metrics.auth_attempt(credential_kind(found[0], unguessable, found[1]), "success")
        return found

    def _unavailable(
        self, event: str, username: str | None, client: ClientInfo, exc: IdentityUnavailable
    ) -> TokenRequestError:
        """The directory cannot answer: a 503 the client may retry, logged and audited."""
        log.warning("%s of %r: %s", event, (username or "")[:64], exc)
        self._audit(
            AuditEvent(
                event,
                "failure",
                username[:255] if username else None,
                client.address,
                client.user_agent,
                detail={"reason": "identity source unavailable"},
            )
        )
        return TokenRequestError(
            "temporarily_unavailable",
            "the identity provider (directory) is unavailable; try again later",
            503,
            UNAVAILABLE_RETRY,
        )

    def refresh(self, secret: str, client: ClientInfo) -> tuple[Principal, str]:
        for authenticator in self.authenticators:
            try:
                principal = redeem_refresh_token(self.store, secret, authenticator, client)
            except IdentityUnavailable as exc:
                raise self._unavailable("refresh", None, client, exc) from None
            if principal is not None:
                metrics.auth_attempt("refresh", "success")
                return principal, authenticator.backend
        metrics.auth_attempt("refresh", "failure")
        self._audit(AuditEvent("refresh", "failure", None, client.address, client.user_agent))
        raise TokenRequestError("invalid_grant", "invalid or revoked refresh token", 400)

    def revoke(self, secret: str) -> None:
        """RFC 7009: revoke a refresh token; unknown tokens are not an error."""
        record = self.store.refresh_tokens.find_active(secret_hash(secret))
        if record is not None:
            self.store.refresh_tokens.revoke(record.id)

    @staticmethod
    def _login_event(username: str, client: ClientInfo, outcome: str) -> AuditEvent:
        return AuditEvent("login", outcome, username[:255], client.address, client.user_agent)

    def grant(
        self,
        principal: Principal,
        scopes: list[str],
        client: ClientInfo,
        *,
        backend: str | None = None,
        offline: bool = False,
        client_id: str = "",
        method: str = "token",
    ) -> TokenResponse:
        try:
            requested = parse_scopes(scopes)
        except ScopeError as exc:
            raise TokenRequestError("invalid_scope", str(exc)) from None
        grants = self.policy.authorize(principal, requested)
        allowed: list[Access] = granted(grants)
        issued = self.issuer.mint(
            principal.subject, self.service, allowed, token_id=principal.token_id
        )
        refresh = None
        if offline and not principal.anonymous and backend is not None:
            _, refresh = issue_refresh_token(
                self.store,
                principal,
                backend=backend,
                client_id=client_id or "unknown",
                authenticators=self.authenticators,
                client=client,
            )
        denied = [g.reason for g in grants if g.access.actions != g.requested.actions]
        metrics.token_granted(method, partial=bool(denied))
        self._audit(
            AuditEvent(
                "token",
                "success" if not denied else "partial",
                principal.subject or None,
                client.address,
                client.user_agent,
                scopes_requested=tuple(a.scope() for a in requested),
                scopes_granted=tuple(a.scope() for a in allowed),
                detail={"method": method, "kind": str(principal.kind), "denied": denied},
            )
        )
        return TokenResponse(
            issued.token, issued.expires_in, issued.issued_at, format_scopes(allowed), refresh
        )
