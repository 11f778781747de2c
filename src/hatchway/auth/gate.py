"""Registry-side access control: does this request's credential cover what it needs?

One ``Gate`` per auth mode, as distribution's ``AccessController``: handlers state the
:class:`Access` they need, the gate answers with the principal or raises a
:class:`Challenge`. No web imports; the HTTP layer passes header values in.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hatchway.auth import challenge
from hatchway.auth.access import Access, Resource
from hatchway.auth.challenge import Challenge
from hatchway.auth.credentials.ratelimit import Limiter, Throttled
from hatchway.auth.identity.base import Authenticator, ClientInfo, IdentityUnavailable
from hatchway.auth.policy.engine import Policy
from hatchway.auth.policy.source import PolicyProvider, provider
from hatchway.auth.principal import ANONYMOUS, Kind, Principal
from hatchway.auth.tokens.errors import TokenError
from hatchway.auth.tokens.jwt import Claims, TokenVerifier
from hatchway.auth.tokens.remote import KeysRefreshing
from hatchway.errors import UNAVAILABLE, HatchwayError
from hatchway.observability import metrics

_CACHE_SIZE = 10_000
_CACHE_TTL = 60.0


class SourceUnavailable(HatchwayError):
    """An identity source (the directory) cannot answer: 503 with ``Retry-After``."""

    def __init__(self) -> None:
        super().__init__(
            UNAVAILABLE, "the identity provider (directory) is unavailable; try again later"
        )
        self.headers = {"Retry-After": "5"}


@dataclass(frozen=True, slots=True)
class Allowed:
    """Who the request acts for, and what it may do (for checks inside handlers)."""

    principal: Principal
    granted: tuple[Access, ...] = ()
    everything: bool = False
    token_id: str | None = field(default=None)

    def covers(self, needed: list[Access]) -> bool:
        """Every action of every needed access is allowed."""
        return all(self.allows(n.resource, action) for n in needed for action in n.actions)

    def allows(self, resource: Resource, action: str) -> bool:
        if self.everything:
            return True
        return any(
            a.resource == resource and (action in a.actions or "*" in a.actions)
            for a in self.granted
        )


class Gate(Protocol):
    """``needed`` must all be allowed, or the gate raises a :class:`Challenge`.
    ``optional`` is what the request can use but does without (the source of a
    cross-repository mount): a challenge names it, so the client's token asks for it,
    and the answer carries it where allowed, but its absence refuses nothing."""

    async def check(
        self,
        authorization: str | None,
        needed: list[Access],
        realm: str,
        client: ClientInfo,
        optional: Sequence[Access] = (),
    ) -> Allowed: ...


class OpenGate:
    """No ``auth`` section: everything is allowed (and the server said so at start)."""

    async def check(
        self,
        authorization: str | None,
        needed: list[Access],
        realm: str,
        client: ClientInfo,
        optional: Sequence[Access] = (),
    ) -> Allowed:
        return Allowed(ANONYMOUS, everything=True)


def _allowed(claims: Claims) -> Allowed:
    """The principal and grants a token stands for."""
    kind = Kind.ANONYMOUS if not claims.subject else Kind.USER
    principal = Principal(subject=claims.subject, kind=kind, token_id=claims.token_id)
    return Allowed(principal, tuple(claims.access), token_id=claims.token_id)


@runtime_checkable
class _Revisioned(Protocol):
    def revision(self) -> int: ...


def _no_revision() -> int:
    return 0


class TokenGate:
    """Bearer JWTs from the built-in token service or an external issuer."""

    def __init__(
        self,
        verifier: TokenVerifier,
        service: str,
        revoked: Callable[[str], bool] | None = None,
        refused_subject: Callable[[str], bool] | None = None,
    ) -> None:
        self._verifier = verifier
        self._service = service
        self._revoked = revoked
        # Is the token's account disabled or deleted? Then its issued tokens stop too.
        self._refused_subject = refused_subject
        self._leeway = verifier.leeway
        self._cache: dict[str, tuple[Claims, Allowed, float, int]] = {}
        # Changes when signing keys are added or removed (a retired key's tokens must
        # stop at once, not when their cache entry ages out).
        keys = verifier.keys
        self._key_revision = keys.revision if isinstance(keys, _Revisioned) else _no_revision

    def _verified(self, token: str) -> tuple[Claims, Allowed]:
        """Verify a token, remembering the answer for identical token strings.

        A client sends the same JWT with every request of a pull or push; checking its
        signature each time would cost more than serving a manifest. The cache keeps
        the exact string, so only expiry or a change of the signing keys can change the
        answer: both are checked on every hit (entries also age out after a minute, in
        case an external issuer withdraws a key).
        """
        now = time.time()
        revision = self._key_revision()
        hit = self._cache.get(token)
        if hit is not None:
            claims, allowed, checked, verified_under = hit
            if (
                now - checked < _CACHE_TTL
                and claims.expires_at.timestamp() + self._leeway > now
                and verified_under == revision
            ):
                return claims, allowed
            del self._cache[token]
        claims = self._verifier.verify(token)
        allowed = _allowed(claims)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[token] = (claims, allowed, now, revision)
        return claims, allowed

    async def check(
        self,
        authorization: str | None,
        needed: list[Access],
        realm: str,
        client: ClientInfo,
        optional: Sequence[Access] = (),
    ) -> Allowed:
        named = [*needed, *optional]  # what a challenge asks the client to get a token for
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Challenge(
                challenge.bearer(realm, self._service, named),
                needed=tuple(needed),
                failed=authorization is not None,
            )
        try:
            try:
                claims, allowed = self._verified(token.strip())
            except KeysRefreshing as pending:
                # An external issuer's JWKS is being fetched: wait for it off the loop.
                with contextlib.suppress(TimeoutError):
                    fetched = asyncio.shield(asyncio.wrap_future(pending.refresh))
                    await asyncio.wait_for(fetched, pending.wait)
                claims, allowed = self._verified(token.strip())
        except TokenError as exc:
            header = challenge.bearer(realm, self._service, named, "invalid_token")
            raise Challenge(
                header, f"invalid token: {exc}", needed=tuple(needed), failed=True
            ) from None
        token_id = claims.token_id
        account = claims.subject or None
        if token_id and self._revoked is not None and self._revoked(token_id):
            header = challenge.bearer(realm, self._service, named, "invalid_token")
            raise Challenge(
                header,
                "the access token was revoked",
                needed=tuple(needed),
                failed=True,
                account=account,
            )
        if account and self._refused_subject is not None and self._refused_subject(account):
            header = challenge.bearer(realm, self._service, named, "invalid_token")
            raise Challenge(
                header,
                "the account is disabled or deleted",
                needed=tuple(needed),
                failed=True,
                account=account,
            )
        if not allowed.covers(needed):
            header = challenge.bearer(realm, self._service, named, "insufficient_scope")
            raise Challenge(header, "insufficient scope", needed=tuple(needed), account=account)
        return allowed


class BasicGate:
    """HTTP Basic against identity backends (htpasswd), decided by the policy.

    ``policy`` may be a provider (a :class:`~hatchway.auth.policy.source.PolicySource`):
    it is asked on every request, so reloaded rules apply at once.
    """

    def __init__(
        self,
        authenticators: list[Authenticator],
        policy: Policy | PolicyProvider,
        limiter: Limiter,
    ) -> None:
        self._authenticators = authenticators
        self._policy = provider(policy)
        self._limiter = limiter

    async def _principal(
        self, authorization: str | None, client: ClientInfo, realm: str
    ) -> tuple[str | None, Principal | None]:
        """The username given (if any) and the principal it proved (if it did)."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        username, sep, secret = decoded.partition(":")
        if not sep or not username or "\x00" in decoded:  # NUL: no identity store holds it
            return None, None

        def authenticate() -> Principal | None:
            for authenticator in self._authenticators:
                found = authenticator.authenticate(username, secret, client)
                if found is not None:
                    return found
            return None

        try:
            # One thread for the throttle's reads and writes and every backend's bcrypt.
            principal = await asyncio.to_thread(
                self._limiter.login, username, client.address, authenticate
            )
        except Throttled as exc:
            metrics.auth_attempt("password", "throttled")
            raise Challenge(
                challenge.basic(realm),
                "too many failed logins; try again later",
                failed=True,
                account=username[:255],
                retry_after=exc.wait,
            ) from None
        except IdentityUnavailable:
            # The directory is down: a 503 to retry, not "wrong password".
            raise SourceUnavailable from None
        metrics.auth_attempt("password", "success" if principal is not None else "failure")
        return username[:255], principal

    async def check(
        self,
        authorization: str | None,
        needed: list[Access],
        realm: str,
        client: ClientInfo,
        optional: Sequence[Access] = (),
    ) -> Allowed:
        username, principal = await self._principal(authorization, client, realm)
        if principal is None and authorization:
            raise Challenge(
                challenge.basic(realm),
                "incorrect username or password",
                failed=True,
                account=username,
            )
        if principal is None and not needed:
            # GET /v2/ needs no scope, but it is where clients learn that they must log
            # in (docker and skopeo send credentials only after this challenge).
            raise Challenge(challenge.basic(realm))
        principal = principal or ANONYMOUS
        grants = self._policy().authorize(principal, [*needed, *optional])
        allowed = Allowed(principal, tuple(g.access for g in grants if g.access.actions))
        if not allowed.covers(needed):
            if principal.anonymous:
                raise Challenge(challenge.basic(realm), needed=tuple(needed))
            raise Challenge(
                challenge.basic(realm),
                "access denied",
                denied=True,
                needed=tuple(needed),
                account=principal.subject,
            )
        return allowed
