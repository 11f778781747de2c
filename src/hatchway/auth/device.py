"""The OAuth 2.0 Device Authorization Grant (RFC 8628) behind ``hatchway login --sso``.

A client without a browser asks for a code pair (:meth:`DeviceGrants.start`): a
``device_code`` it keeps secret and polls with, and a short ``user_code`` that a person
types (or follows in a link) on the web UI's approval page. There, signed in (password
and second factor, or single sign-on: whatever the UI asks), the person sees which client
asked, from where and when, and approves or denies (:meth:`decide`). The client's next
poll (:meth:`poll`) then gets ``access_denied``, or the approved request, which
:meth:`redeem` spends, once, for the principal to grant a refresh token to.

Both codes are stored as SHA-256 only. User codes are eight letters from RFC 8628's
consonant alphabet (20^8, about 34 bits), shown as ``XXXX-XXXX``; typing is forgiving
(case, dashes, spaces). A lookup hashes what was typed and compares the stored hash in
constant time. Guessing is throttled like passwords: wrong codes count on the login
limiter under ``device:ACCOUNT`` (5 per account and address, 20 per address shared with
password logins, then waits and a lock). Creating codes is limited per address
(:data:`CREATE_RULE`) on the same shared counters, so every worker and replica agrees.

Synchronous (SQL); the HTTP layer runs it in a thread. No web imports.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from hatchway.auth.access import ScopeError, parse_scopes
from hatchway.auth.credentials.passwords import before_check
from hatchway.auth.credentials.pat import new_secret, secret_hash
from hatchway.auth.credentials.ratelimit import Limiter, address_key
from hatchway.auth.identity.base import Authenticator, ClientInfo, IdentityUnavailable
from hatchway.auth.principal import Principal
from hatchway.auth.service import TokenRequestError
from hatchway.metadata.attempts import Rule
from hatchway.metadata.devicecodes import APPROVED, DENIED, PENDING, DeviceCode, DeviceCodeStore
from hatchway.metadata.records import AuditEvent, ConflictError, Outcome, utcnow

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_PREFIX = "hwd_"
# RFC 8628 section 6.1: no vowels (no words), nothing that looks like a digit.
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
# Code creation per address: 20 within 10 minutes, then waits from 1 minute on.
CREATE_RULE = Rule(threshold=20, window=600.0, base_delay=60.0, max_delay=600.0, lockout=900.0)
KEEP_EXPIRED = timedelta(days=1)  # expired requests are forgotten after this
_MAX_CLIENT_ID = 128
_MAX_SCOPE = 1024
_MAX_CODE = 100


class WrongCode(Exception):
    """No request has this user code (counted as a failed attempt)."""


class NotPending(Exception):
    """The request was decided already, or it expired."""


@dataclass(frozen=True, slots=True)
class Started:
    """What ``POST /auth/device/code`` answers (besides the verification URIs)."""

    device_code: str
    user_code: str
    expires_in: int
    interval: int


def new_user_code() -> str:
    letters = "".join(secrets.choice(ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{letters[:4]}-{letters[4:]}"


def normalize_user_code(typed: str) -> str | None:
    """``bcdf ghjk`` / ``BCDF-GHJK`` -> ``BCDF-GHJK``; None when it cannot be a code."""
    if len(typed) > _MAX_CODE:
        return None
    letters = "".join(c for c in typed.upper() if c not in " -\t")
    if len(letters) != USER_CODE_LENGTH or any(c not in ALPHABET for c in letters):
        return None
    return f"{letters[:4]}-{letters[4:]}"


def user_hash(code: str) -> str:
    return secret_hash("device-user-code:" + code)


def _oauth(error: str, description: str, status: int = 400) -> TokenRequestError:
    return TokenRequestError(error, description, status)


class DeviceGrants:
    def __init__(
        self,
        store: DeviceCodeStore,
        limiter: Limiter,
        authenticators: list[Authenticator],
        audit: Callable[[AuditEvent], None],
        *,
        expiration: float = 600.0,
        interval: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.authenticators = authenticators
        self.audit = audit
        self.expiration = expiration
        self.interval = interval
        self._clock = clock

    # -- the client's side ---------------------------------------------------------------

    def start(self, client_id: str, scope: str, client: ClientInfo) -> Started:
        """A new pending request (``invalid_request`` for bad fields, 429 too often)."""
        if not client_id:
            raise _oauth("invalid_request", "client_id is required")
        if len(client_id) > _MAX_CLIENT_ID or not client_id.isprintable():
            raise _oauth("invalid_request", "client_id is too long or not printable")
        if len(scope) > _MAX_SCOPE or not scope.isprintable():
            raise _oauth("invalid_scope", "scope is too long or not printable")
        try:
            parse_scopes([scope])  # refused now, not after the person approved
        except ScopeError as exc:
            raise _oauth("invalid_scope", str(exc)) from None
        key = f"device-create:{address_key(client.address)}"
        reserved = self.limiter.store.reserve([(key, CREATE_RULE)], self._clock())
        if reserved.wait is not None:
            self._record("device.code", Outcome.THROTTLED, None, client, client_id=client_id)
            raise TokenRequestError(
                "too_many_requests",
                "too many device codes from this address; try again later",
                429,
                reserved.wait,
            )
        now = utcnow()
        self.store.purge(now - KEEP_EXPIRED)
        for _ in range(5):  # a user code that is taken (astronomically rare): draw again
            device_code, user_code = new_secret(DEVICE_PREFIX), new_user_code()
            try:
                code_id = self.store.create(
                    device_hash=secret_hash(device_code),
                    user_hash=user_hash(user_code),
                    client_id=client_id,
                    scope=" ".join(scope.split()),
                    expires_at=now + timedelta(seconds=self.expiration),
                    interval=self.interval,
                    address=client.address,
                    user_agent=client.user_agent,
                )
            except ConflictError:
                continue
            self._record(
                "device.code", Outcome.SUCCESS, None, client, client_id=client_id, request=code_id
            )
            return Started(device_code, user_code, math.ceil(self.expiration), self.interval)
        raise _oauth("temporarily_unavailable", "could not make a unique code; try again", 503)

    def poll(self, device_code: str, client_id: str, client: ClientInfo) -> DeviceCode:
        """The approved request (to :meth:`redeem`); else the RFC 8628 error to answer."""
        if not device_code:
            raise _oauth("invalid_request", "device_code is required")
        if not client_id:
            raise _oauth("invalid_request", "client_id is required")
        found = None
        if device_code.startswith(DEVICE_PREFIX) and len(device_code) <= _MAX_CODE:
            found = self.store.by_device(secret_hash(device_code))
        if found is None:
            raise _oauth("invalid_grant", "unknown device_code")
        if not hmac.compare_digest(found.client_id.encode(), client_id[:_MAX_CLIENT_ID].encode()):
            raise _oauth("invalid_grant", "the device_code was issued to another client_id")
        if found.state == DENIED:
            raise _oauth("access_denied", "the request was denied")
        if found.state not in (PENDING, APPROVED):
            raise _oauth("invalid_grant", "the device_code was used already")
        if found.expired():
            raise _oauth("expired_token", "the device_code expired; start again")
        if not self.store.poll(found.id, self._clock()):
            raise _oauth("slow_down", "polled too soon: wait interval + 5 seconds")
        if found.state == PENDING:
            raise _oauth("authorization_pending", "waiting for the user to approve")
        return found

    def redeem(self, found: DeviceCode, client: ClientInfo) -> tuple[Principal, str]:
        """Spend an approved request: who approved it, as that account is now (disabled
        or gone: refused). The account is looked up first, so a directory that cannot
        answer (503) leaves the code for the next poll."""
        backend = found.backend or ""
        authenticator = next((a for a in self.authenticators if a.backend == backend), None)
        principal = None
        if authenticator is not None and found.subject:
            try:
                principal = authenticator.resolve(found.subject)
            except IdentityUnavailable:
                raise _oauth(
                    "temporarily_unavailable", "the identity provider is unavailable", 503
                ) from None
        if principal is None:
            self.store.redeem(found.id)  # spent: it never works, even if the account returns
            self._record(
                "device.exchange", Outcome.FAILURE, found.subject, client, request=found.id
            )
            raise _oauth("invalid_grant", "the account that approved is no longer active")
        if not self.store.redeem(found.id):  # another poll took it a moment ago
            raise _oauth("invalid_grant", "the device_code was used already")
        self._record(
            "device.exchange",
            Outcome.SUCCESS,
            principal.subject,
            client,
            client_id=found.client_id,
            request=found.id,
        )
        return principal, backend

    # -- the person's side (the approval page) -------------------------------------------

    def lookup(self, typed: str, account: str, client: ClientInfo) -> DeviceCode:
        """The request with this user code, for ``account`` to decide on.

        Raises :class:`WrongCode` (counted), ``Throttled`` after too many wrong codes,
        :class:`NotPending` when the request is decided or expired."""
        code = normalize_user_code(typed)

        def attempt() -> DeviceCode | None:
            count = before_check.get()
            if count is not None:
                count()  # Throttled once the counters block
            if code is None:
                return None
            wanted = user_hash(code)
            found = self.store.by_user(wanted)
            if found is None or not hmac.compare_digest(found.user_hash, wanted):
                return None
            return found

        found = self.limiter.login(f"device:{account}", client.address, attempt)
        if found is None:
            self._record("device.approve", Outcome.FAILURE, account, client, reason="wrong code")
            raise WrongCode("no sign-in request has this code")
        if found.state != PENDING or found.expired():
            raise NotPending("this code expired or was used already")
        return found

    def decide(
        self, typed: str, approve: bool, principal: Principal, backend: str, client: ClientInfo
    ) -> DeviceCode:
        """Approve or deny the request with this user code (checked again, as on lookup)."""
        found = self.lookup(typed, principal.subject, client)
        if not self.store.decide(
            found.id, approve=approve, subject=principal.subject, backend=backend
        ):
            raise NotPending("this code expired or was used already")
        self._record(
            "device.approve" if approve else "device.deny",
            Outcome.SUCCESS,
            principal.subject,
            client,
            client_id=found.client_id,
            request=found.id,
            requested_from=found.created_addr,
        )
        return found

    def _record(
        self,
        event: str,
        outcome: Outcome,
        account: str | None,
        client: ClientInfo,
        **detail: object,
    ) -> None:
        self.audit(
            AuditEvent(
                event,
                outcome,
                account[:255] if account else None,
                client.address,
                client.user_agent,
                detail={k: v for k, v in detail.items() if v is not None},
            )
        )


__all__ = [
    "ALPHABET",
    "GRANT_TYPE",
    "DeviceGrants",
    "NotPending",
    "Started",
    "WrongCode",
    "new_user_code",
    "normalize_user_code",
]
