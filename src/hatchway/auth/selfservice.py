"""What any account may do to itself: see who it is, change its password, manage its tokens.

The management API's ``/api/v1/me`` endpoints call this; it knows nothing of HTTP. It reuses
what ``hatchway user passwd`` and ``hatchway token create|revoke`` use (``hash_password``,
``create_token``, ``parse_expiry``, the store's ``set_password`` that revokes sessions) so the
rules are the same wherever a change comes from, and audits under the same event names.

A caller that signed in with a personal access token may never get more than that token:
it cannot change the password, a token it creates must be covered by its own scopes and
expire no later than its own (a lifetime left to the default is shortened to fit; one asked
for explicitly is refused), and it can revoke only itself and tokens its scopes cover (a
leaked narrow token cannot take the account's wider ones away).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hatchway.auth.access import Access
from hatchway.auth.credentials.passwords import PasswordVerifier, hash_password
from hatchway.auth.credentials.pat import create_token, parse_expiry, parse_token_scopes
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import Kind, Principal
from hatchway.metadata import AccessToken, AuditEvent, MetadataStore, NotFoundError, Outcome
from hatchway.metadata.accounts import LOCAL_BACKEND
from hatchway.metadata.records import TOKEN_NAME_RE, utcnow

DEFAULT_EXPIRY = "90d"  # as ``hatchway token create``


class SelfServiceError(Exception):
    """A refusal with a message safe to show to the caller."""


class NotPermitted(SelfServiceError):
    """Authenticated, but this credential may not do that (a token changing the password)."""


class NoPassword(SelfServiceError):
    """The account has no password kept here: a robot, or an htpasswd-file account."""


class WrongPassword(SelfServiceError):
    """The old password given does not match."""


class NotInStore(SelfServiceError):
    """The account is not in the built-in store (htpasswd file): it cannot hold tokens."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking and how they signed in (``backend``: local or htpasswd)."""

    principal: Principal
    backend: str
    token: AccessToken | None = None  # set when the credential was an access token
    session: bool = False  # the credential was a refresh token (what `hatchway login` keeps)

    @property
    def name(self) -> str:
        return self.principal.subject


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    kind: str
    admin: bool
    groups: tuple[str, ...]
    created: datetime | None
    backend: str
    token: AccessToken | None


def _glob_covers(outer: str, inner: str) -> bool:
    """Does every name ``inner`` matches also match ``outer``? (``*`` any run, ``?`` one char.)

    ``outer``'s ``*`` takes any run of ``inner``'s characters, globs included; its ``?`` one
    literal or ``?``; a literal only itself. Conservative: a pair it says no to may in rare
    cases overlap fully, never the other way round.
    """

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(outer):
            return j == len(inner)
        head = outer[i]
        if head == "*":
            return match(i + 1, j) or (j < len(inner) and match(i, j + 1))
        if j == len(inner):
            return False
        if head == "?":
            return inner[j] != "*" and match(i + 1, j + 1)
        return inner[j] == head and match(i + 1, j + 1)

    if len(outer) > 256 or len(inner) > 256:
        return outer == inner
    return match(0, 0)


def scopes_cover(own: Iterable[Access], wanted: Iterable[Access]) -> list[str]:
    """The scopes of ``wanted`` that ``own`` does not fully cover (empty: all covered)."""
    own = list(own)
    missing = []
    for access in wanted:
        needed = set(access.actions)
        for scope in own:
            if scope.resource.base_type != access.resource.base_type:
                continue
            if not _glob_covers(scope.resource.name, access.resource.name):
                continue
            needed = set() if "*" in scope.actions else needed - scope.actions
            if not needed:
                break
        if needed:
            missing.append(access.scope())
    return missing


class SelfService:
    """Synchronous (bcrypt, SQL): the HTTP layer calls it in a thread."""

    def __init__(
        self,
        store: MetadataStore,
        verifier: PasswordVerifier,
        audit: Callable[[AuditEvent], None],
        *,
        guard: Callable[[str, ClientInfo, Callable[[], bool]], bool] | None = None,
        on_password_change: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.verifier = verifier
        self._audit = audit
        # Runs the old-password check under the login throttle (counted before bcrypt).
        self._guard = guard
        self._on_password_change = on_password_change

    def caller(self, principal: Principal, backend: str) -> Caller:
        token = None
        if principal.token_id is not None and principal.token_id.isdigit():
            token = self.store.tokens.get(int(principal.token_id))
        return Caller(principal, backend, token)

    def me(self, caller: Caller) -> Profile:
        account = self.store.accounts.get(caller.name) if _in_store(caller) else None
        return Profile(
            name=caller.name,
            kind=str(caller.principal.kind),
            admin=caller.principal.admin,
            groups=tuple(sorted(caller.principal.groups)),
            created=account.created_at if account is not None else None,
            backend=caller.backend,
            token=caller.token,
        )

    def change_password(self, caller: Caller, old: str, new: str, client: ClientInfo) -> None:
        if caller.principal.kind is Kind.ROBOT:
            raise NoPassword("robot accounts have no password, only tokens")
        if caller.token is not None or caller.principal.token_scopes is not None:
            self._record("user.passwd", caller, client, Outcome.DENIED, reason="token")
            raise NotPermitted("an access token cannot change the password; sign in with it")
        account = self.store.accounts.get(caller.name) if caller.backend == LOCAL_BACKEND else None
        if account is None or account.password_hash is None:
            raise NoPassword("this account's password is kept outside hatchway (htpasswd file)")
        stored = account.password_hash

        def old_matches() -> bool:
            return self.verifier.verify(caller.name, old, stored)

        matched = (
            self._guard(caller.name, client, old_matches)
            if self._guard is not None
            else old_matches()
        )
        if not matched:
            self._record("user.passwd", caller, client, Outcome.FAILURE, reason="old password")
            raise WrongPassword("the old password is incorrect")
        hashed = hash_password(new)  # ValueError: empty or over bcrypt's 72 bytes
        self.store.accounts.set_password(caller.name, hashed)  # revokes refresh tokens
        if self._on_password_change is not None:
            self._on_password_change(caller.name)  # the old one must stop working here now
        self._record("user.passwd", caller, client)

    def tokens(self, caller: Caller) -> list[AccessToken]:
        return self.store.tokens.list(caller.name)

    def create_token(
        self,
        caller: Caller,
        *,
        name: str,
        scopes: list[str],
        expires: str | None,
        client: ClientInfo,
        clamp: bool = False,
    ) -> tuple[AccessToken, str]:
        """Create a token for the caller. ``clamp``: ``expires`` is the default, not the
        caller's choice, so a token caller gets it shortened to its own expiry."""
        lifetime = parse_expiry(expires) if expires is not None else None  # ValueError
        own_expiry = caller.token.expires_at if caller.token is not None else None
        if clamp and own_expiry is not None:
            # A second short of the parent's end, so the check below (a moment later) holds.
            left = own_expiry - utcnow() - timedelta(seconds=1)
            if lifetime is None or lifetime > left:
                lifetime = max(left, timedelta(seconds=1))
        if caller.token is not None:
            self._within_own_token(caller, caller.token, scopes, lifetime, client)
        if not _in_store(caller) or self.store.accounts.get(caller.name) is None:
            raise NotInStore("accounts of the htpasswd file cannot hold access tokens")
        record, secret = create_token(
            self.store, caller.name, name=name, scopes=scopes, lifetime=lifetime
        )
        self._record(
            "token.create",
            caller,
            client,
            token_id=record.id,
            token_name=record.name,
            scopes=list(record.scopes),
            expires=record.expires_at.isoformat() if record.expires_at else "never",
        )
        return record, secret

    def _within_own_token(
        self,
        caller: Caller,
        own: AccessToken,
        scopes: list[str],
        lifetime: timedelta | None,
        client: ClientInfo,
    ) -> None:
        missing = scopes_cover(parse_token_scopes(own.scopes), parse_token_scopes(scopes))
        if missing:
            self._record("token.create", caller, client, Outcome.DENIED, reason="scopes")
            raise NotPermitted(
                f"a token can only create tokens within its own scopes; not covered: "
                f"{' '.join(missing)[:500]}"
            )
        limit = own.expires_at
        if limit is not None and (lifetime is None or utcnow() + lifetime > limit):
            self._record("token.create", caller, client, Outcome.DENIED, reason="expiry")
            raise NotPermitted(
                "a token can only create tokens that expire no later than itself "
                f"({limit.isoformat()})"
            )

    def revoke_token(self, caller: Caller, name: str, client: ClientInfo) -> AccessToken:
        """Revoke a live token by name (NotFoundError when there is none)."""
        if not TOKEN_NAME_RE.fullmatch(name):  # never an id: names start with a letter
            raise NotFoundError(f"{caller.name!r} has no token {name[:100]!r}")
        own = caller.token
        if own is not None and own.name != name:
            target = next((t for t in self.store.tokens.list(caller.name) if t.name == name), None)
            if target is None:
                raise NotFoundError(f"{caller.name!r} has no token {name[:100]!r}")
            missing = scopes_cover(
                parse_token_scopes(own.scopes), parse_token_scopes(target.scopes)
            )
            if missing:
                self._record("token.revoke", caller, client, Outcome.DENIED, reason="scopes")
                raise NotPermitted(
                    "a token can only revoke itself and tokens within its own scopes; not "
                    f"covered: {' '.join(missing)[:500]}"
                )
        record = self.store.tokens.revoke(caller.name, name)
        self._record("token.revoke", caller, client, token_id=record.id, token_name=record.name)
        return record

    def _record(
        self,
        event: str,
        caller: Caller,
        client: ClientInfo,
        outcome: Outcome = Outcome.SUCCESS,
        **detail: Any,
    ) -> None:
        how = f"token {caller.token.name}" if caller.token is not None else "password"
        self._audit(
            AuditEvent(
                event=event,
                outcome=outcome,
                account=caller.name,
                client_addr=client.address,
                user_agent=client.user_agent,
                detail={"by": caller.name, "via": "api", "auth": how, **detail},
            )
        )


# Accounts that are rows of the store: local ones, and federated ones (no password here).
_STORE_BACKENDS = frozenset({LOCAL_BACKEND, "oidc"})


def _in_store(caller: Caller) -> bool:
    return caller.backend in _STORE_BACKENDS
