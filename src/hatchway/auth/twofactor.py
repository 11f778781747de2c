"""Two-factor authentication with TOTP (RFC 6238), and the rule that keeps it meaningful.

Enrolment: :meth:`TwoFactorService.start` makes a secret and its ``otpauth://`` URI
(issuer ``hatchway``, label the account name); :meth:`~TwoFactorService.confirm` with a
first valid code makes it active and returns ten recovery codes, shown this once and
stored as SHA-256 (they are random, 50 bits each, and guessing is throttled). Enrolment
revokes the account's refresh tokens: they came from password sign-ins made without the
second factor.

A code is accepted within one time step either way, once: the step it matched is recorded
with a conditional UPDATE (``metadata.twofactor``), so a replay is refused even when two
workers see the same code at once. A recovery code is single-use the same way. Wrong codes
count as failed logins on the password limiter (429 after as many), under their own
account key so that a right password does not reset them.

The rule (:meth:`TwoFactorService.password_refusal`): an account with a second factor
cannot sign in with its password alone where no second factor can be asked (``docker
login``, ``/auth/token``, Basic on ``/api/v1``); it uses access tokens or ``hatchway login
--sso``. With ``identity.twofactor.required`` an account that must have 2FA and has not
is refused the same way, except on the enrolment endpoints. Framework-free: the web UI and
the API call it in a thread.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pyotp

from hatchway.auth.credentials.passwords import before_check
from hatchway.auth.credentials.ratelimit import Limiter
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import Kind, Principal
from hatchway.auth.selfservice import Caller
from hatchway.metadata import AuditEvent, MetadataStore, Outcome
from hatchway.metadata.records import ConflictError

ISSUER = "hatchway"
STEP = 30
WINDOW = 1  # steps either side of now
RECOVERY_CODES = 10
ACTIVE_TTL = 1.0
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
Required = Literal["none", "admins", "all"]

USE_TOKENS = (
    "use a personal access token instead (create one with `hatchway token create` or "
    "POST /api/v1/me/tokens), or sign in with `hatchway login --sso`"
)
HAS_2FA = (
    "this account uses two-factor authentication: its password alone is not accepted "
    "here; " + USE_TOKENS
)
MUST_ENROL = (
    "this account must set up two-factor authentication first: sign in to the web UI, or "
    "enrol with POST /api/v1/me/twofactor/totp; then " + USE_TOKENS
)


class TwoFactorError(Exception):
    """A refusal with a message safe to show."""


class NotPermitted(TwoFactorError):
    """An access token may not enrol or disable a second factor."""


class NotApplicable(TwoFactorError):
    """No second factor for this account (a robot, or not kept in this store)."""


class Conflict(TwoFactorError):
    """Already enrolled, or no enrolment to confirm / disable."""


class WrongCode(TwoFactorError):
    """The code (or the password) is wrong, or was already used."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class Status:
    enabled: bool
    pending: bool
    method: str | None
    recovery_codes_left: int
    required: bool
    passkeys: int = 0


def _normalize_recovery(code: str) -> str:
    return "".join(c for c in code.lower() if c not in " -")


def recovery_hash(code: str) -> str:
    return hashlib.sha256(_normalize_recovery(code).encode()).hexdigest()


def new_recovery_code() -> str:
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{chars[:5]}-{chars[5:]}"


def _uri(name: str, secret: str) -> str:
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(name=name, issuer_name=ISSUER)


def _is_totp(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit()


class TwoFactorService:
    """Synchronous (SQL, bcrypt through ``check_password``): call it in a thread.

    ``check_password(name, password, client)``: does the password sign this account in
    (throttled; may raise ``Throttled``); without one, disabling is refused.
    """

    def __init__(
        self,
        store: MetadataStore,
        limiter: Limiter,
        audit: Callable[[AuditEvent], None],
        *,
        required: Required = "none",
        check_password: Callable[[str, str, ClientInfo], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self._audit = audit
        self.required = required
        self._check_password = check_password
        self._clock = clock
        # name -> (monotonic time, 2FA on): the rule runs on every password grant, which
        # the token service answers from memory for a returning user. A change made by
        # another worker applies within ACTIVE_TTL; one made here at once.
        self._active: dict[str, tuple[float, bool]] = {}

    # -- state and the rule ------------------------------------------------------------

    def must_have(self, principal: Principal) -> bool:
        """Does ``identity.twofactor.required`` ask this account for a second factor?"""
        if principal.kind is not Kind.USER:
            return False
        return self.required == "all" or (self.required == "admins" and principal.admin)

    def status(self, principal: Principal) -> Status:
        found = self.store.twofactor.get(principal.subject)
        keys = self.store.passkeys.count(principal.subject)
        return Status(
            enabled=(found is not None and found.active) or keys > 0,
            pending=found is not None and not found.active,
            method=found.method if found is not None and found.active else None,
            recovery_codes_left=found.recovery_left if found is not None else 0,
            required=self.must_have(principal),
            passkeys=keys,
        )

    def password_refusal(self, principal: Principal) -> str | None:
        """Why a password sign-in (no second factor possible) is refused, or None.

        Tokens (``token_id`` set) and robots are never refused: they are what a 2FA
        account uses where no second factor can be asked.
        """
        if principal.token_id is not None or principal.kind is not Kind.USER:
            return None
        if self._is_active(principal.subject):
            return HAS_2FA
        if self.must_have(principal):
            return MUST_ENROL
        return None

    def web_step(self, principal: Principal) -> Literal["verify", "enrol"] | None:
        """What a web sign-in (whose first step passed) still needs before a session:
        the second factor (``verify``), setting one up (``enrol``, required and none yet;
        only accounts kept in this store can enrol), or nothing (None)."""
        if principal.token_id is not None or principal.kind is not Kind.USER:
            return None
        if self._is_active(principal.subject):
            return "verify"
        if self.must_have(principal) and self.store.accounts.get(principal.subject) is not None:
            return "enrol"
        return None

    def must_enrol(self, principal: Principal) -> bool:
        """Required to have a second factor and has none (cached: cheap per request)."""
        return self.must_have(principal) and not self._is_active(principal.subject)

    def _is_active(self, name: str) -> bool:
        now = time.monotonic()
        hit = self._active.get(name)
        if hit is not None and now - hit[0] < ACTIVE_TTL:
            return hit[1]
        active = self.store.twofactor.is_active(name)
        if len(self._active) >= 10_000:
            self._active.clear()
        self._active[name] = (now, active)
        return active

    def _changed(self, name: str) -> None:
        self._active.pop(name, None)

    # -- enrolment ---------------------------------------------------------------------

    def _own(self, caller: Caller, event: str, client: ClientInfo) -> None:
        if caller.principal.kind is not Kind.USER:
            raise NotApplicable("only user accounts have a second factor")
        if caller.token is not None or caller.principal.token_id is not None:
            self._record(event, caller.name, client, Outcome.DENIED, reason="token")
            raise NotPermitted(
                "an access token cannot change two-factor authentication; sign in with the password"
            )
        if self.store.accounts.get(caller.name) is None:
            raise NotApplicable("this account is not kept by hatchway (htpasswd file)")

    def start(self, caller: Caller, client: ClientInfo) -> Enrolment:
        """A new secret (replacing an unconfirmed one); Conflict if 2FA is on already."""
        self._own(caller, "twofactor.enrol", client)
        secret = pyotp.random_base32(32)
        try:
            self.store.twofactor.start(caller.name, secret)
        except ConflictError:
            raise Conflict(
                "two-factor authentication is already on; disable it first to enrol again"
            ) from None
        self._record("twofactor.enrol", caller.name, client, method="totp")
        return Enrolment(secret, _uri(caller.name, secret))

    def pending(self, caller: Caller) -> Enrolment | None:
        """The started, unconfirmed enrolment of this account (to show it again), or None."""
        found = self.store.twofactor.get(caller.name)
        if found is None or found.active:
            return None
        return Enrolment(found.secret, _uri(caller.name, found.secret))

    def confirm(self, caller: Caller, code: str, client: ClientInfo) -> list[str]:
        """Turn 2FA on with a first valid code; the recovery codes, shown this once."""
        self._own(caller, "twofactor.confirm", client)
        found = self.store.twofactor.get(caller.name)
        if found is None or found.active:
            raise Conflict("no enrolment to confirm: start one with POST /me/twofactor/totp")
        secret = found.secret
        step = self._throttled(caller.name, client, lambda: self._match(secret, code))
        if step is None:
            self._record("twofactor.confirm", caller.name, client, Outcome.FAILURE)
            raise WrongCode("the code is incorrect")
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        if not self.store.twofactor.confirm(caller.name, step, [recovery_hash(c) for c in codes]):
            raise Conflict("the enrolment was confirmed or restarted meanwhile")
        self._changed(caller.name)
        revoked = self.store.refresh_tokens.revoke_subject(caller.name)
        self._record(
            "twofactor.confirm", caller.name, client, method="totp", refresh_revoked=revoked
        )
        return codes

    def regenerate(self, caller: Caller, code: str, client: ClientInfo) -> list[str]:
        """Ten new recovery codes (the old ones stop working), shown this once; needs a
        current code from the app (not a recovery code: that could be a stolen list)."""
        self._own(caller, "twofactor.recovery_codes", client)
        self.verify(caller.name, code, client, recovery=False)
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        self.store.twofactor.replace_recovery(caller.name, [recovery_hash(c) for c in codes])
        self._record("twofactor.recovery_codes", caller.name, client, count=len(codes))
        return codes

    # -- checking a code ---------------------------------------------------------------

    def _match(self, secret: str, code: str) -> int | None:
        """The time step within the window whose code this is (compared in constant time)."""
        code = code.strip().replace(" ", "")
        if not _is_totp(code):
            return None
        totp = pyotp.TOTP(secret, interval=STEP)
        now = int(self._clock()) // STEP
        matched = None
        for step in range(now - WINDOW, now + WINDOW + 1):
            if hmac.compare_digest(totp.generate_otp(step), code) and matched is None:
                matched = step
        return matched

    def _throttled(
        self, name: str, client: ClientInfo, check: Callable[[], int | None]
    ) -> int | None:
        """Run a code check under the login limiter (counted before it runs).

        Counted under ``2fa:NAME``: the limiter's pair, address and account keys of the
        password logins, for the account's codes. A right password must not reset the
        count of wrong codes (an attacker who has the password would sign in between
        guesses); the address key is shared with password logins."""

        def attempt() -> int | None:
            count = before_check.get()
            if count is not None:
                count()  # Throttled once the counters block
            return check()

        return self.limiter.login(f"2fa:{name}", client.address, attempt)

    def verify(self, name: str, code: str, client: ClientInfo, *, recovery: bool = True) -> str:
        """Check a second factor of an account with 2FA on: ``"totp"`` or ``"recovery"``
        (which one matched), else WrongCode; Throttled after too many wrong ones."""
        found = self.store.twofactor.get(name)
        if found is None or not found.active:
            raise Conflict("two-factor authentication is not on for this account")
        secret = found.secret

        def check() -> int | None:
            if _is_totp(code.strip().replace(" ", "")):
                step = self._match(secret, code)
                if step is None or not self.store.twofactor.take_step(name, step):
                    return None
                return step
            if recovery:
                return self._use_recovery(name, code, client)
            return None

        matched = self._throttled(name, client, check)
        if matched is None:
            self._record("twofactor.verify", name, client, Outcome.FAILURE)
            raise WrongCode("the code is incorrect or was already used")
        return "totp" if matched >= 0 else "recovery"

    def _use_recovery(self, name: str, code: str, client: ClientInfo) -> int | None:
        wanted = recovery_hash(code)
        hit = None
        for code_id, stored in self.store.twofactor.recovery_hashes(name):
            if hmac.compare_digest(stored, wanted) and hit is None:
                hit = code_id
        if hit is None or not self.store.twofactor.use_recovery(hit):
            return None
        left = len(self.store.twofactor.recovery_hashes(name))
        self._record("twofactor.recovery", name, client, left=left)
        return -1

    # -- turning it off ----------------------------------------------------------------

    def disable(self, caller: Caller, password: str, code: str, client: ClientInfo) -> None:
        """Both the password and a code (or a recovery code) are needed."""
        self._own(caller, "twofactor.disable", client)
        if self._check_password is None or not password:
            raise WrongCode("the password is incorrect")
        if not self._check_password(caller.name, password, client):
            self._record(
                "twofactor.disable", caller.name, client, Outcome.FAILURE, reason="password"
            )
            raise WrongCode("the password is incorrect")
        self.verify(caller.name, code, client)
        self.store.twofactor.remove(caller.name)
        self._changed(caller.name)
        self._record("twofactor.disable", caller.name, client)

    def reset(self, by: str, account: str, client: ClientInfo, *, via: str = "api") -> bool:
        """An admin removes another account's second factor (NotFoundError: no account);
        False when it had none."""
        removed = self.store.twofactor.remove(account)
        self._changed(account)
        self._audit(
            AuditEvent(
                "twofactor.reset",
                Outcome.SUCCESS,
                account,
                client.address,
                client.user_agent,
                detail={"by": by, "via": via, "removed": removed},
            )
        )
        return removed

    # -- for the other second factor (auth.passkeys): the same owner check, limiter and audit

    def own(self, caller: Caller, event: str, client: ClientInfo) -> None:
        """Only a user account kept here, signed in with its password (not a token)."""
        self._own(caller, event, client)

    def throttled(
        self, name: str, client: ClientInfo, check: Callable[[], int | None]
    ) -> int | None:
        return self._throttled(name, client, check)

    def changed(self, name: str) -> None:
        """Forget the cached "2FA on?" of this account (a factor was added or removed)."""
        self._changed(name)

    def record(
        self,
        event: str,
        account: str,
        client: ClientInfo,
        outcome: Outcome = Outcome.SUCCESS,
        **detail: object,
    ) -> None:
        self._record(event, account, client, outcome, **detail)

    def _record(
        self,
        event: str,
        account: str,
        client: ClientInfo,
        outcome: Outcome = Outcome.SUCCESS,
        **detail: object,
    ) -> None:
        self._audit(
            AuditEvent(
                event,
                outcome,
                account,
                client.address,
                client.user_agent,
                detail={"by": account, **detail},
            )
        )
