"""What an admin may do to everyone: accounts, robots, groups and everyone's tokens.

The management API's admin endpoints and the web UI's admin pages call this; it knows
nothing of HTTP. It reuses what ``hatchway user|group|token`` use (``hash_password``,
``create_token``, ``parse_expiry``, the store's methods that revoke sessions) and audits
under the same event names (``user.add``, ``user.del``, ``group.member.add``, ...), with
``detail.by`` naming the admin and ``detail.via`` where the change came from.

Access rules, the explain box and the audit trail are in :mod:`hatchway.auth.adminrules`
and :mod:`hatchway.auth.adminaudit`.

Every method checks :meth:`Actor.require_admin` itself (defense in depth: a caller that
forgot the check still cannot act). An admin signed in with an access token acts as
admin only when that token carries :data:`ADMIN_SCOPE`: a token never gives more than
its scopes say. Safety rails: an admin cannot disable, delete or demote their own
account, and the last enabled admin can never go.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hatchway.auth.access import Access
from hatchway.auth.credentials.passwords import hash_password
from hatchway.auth.credentials.pat import create_token, parse_expiry, parse_token_scopes
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.selfservice import NotPermitted, SelfServiceError
from hatchway.metadata import (
    AccessToken,
    Account,
    AccountKind,
    AuditEvent,
    ConflictError,
    Group,
    MetadataStore,
    NotFoundError,
    Outcome,
)

ADMIN_SCOPE = "registry:admin:*"
DEFAULT_ROBOT_EXPIRY = "90d"  # as ``hatchway token create``
GENERATED_PASSWORD_BYTES = 18  # 24 url-safe characters


class NotApplicable(SelfServiceError):
    """The operation does not fit this account (a robot's password, a user's token...)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes an admin change, and how: the audit trail records all of it.

    ``token_scopes`` is set when the actor signed in with an access token (its scopes);
    ``auth`` says how they signed in (``password``, ``token NAME``, ``session``).
    """

    name: str
    admin: bool
    via: str = "api"
    auth: str = "password"
    client: ClientInfo = field(default_factory=ClientInfo)
    token_scopes: tuple[Access, ...] | None = None

    def require_admin(self) -> None:
        """Raise :class:`NotPermitted` unless this actor may act as admin."""
        if not self.admin:
            raise NotPermitted("admin accounts only")
        if self.token_scopes is not None and not _has_admin_scope(self.token_scopes):
            raise NotPermitted(
                f"this access token cannot act as admin: it lacks the {ADMIN_SCOPE} scope"
            )


def _has_admin_scope(scopes: tuple[Access, ...]) -> bool:
    return any(
        a.resource.type == "registry" and a.resource.name == "admin" and "*" in a.actions
        for a in scopes
    )


def generate_password() -> str:
    """A password for an account made without one (shown once, never stored in clear)."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


class AdminService:
    """Synchronous (bcrypt, SQL): the HTTP layer calls it in a thread.

    ``audit`` receives every change (and refusal); ``on_account_change`` is told the name
    of an account whose password, admin flag or state changed, so a cache of the local
    authenticator forgets it at once in this worker (others within about a second).
    """

    def __init__(
        self,
        store: MetadataStore,
        audit: Callable[[AuditEvent], None],
        *,
        on_account_change: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self._audit = audit
        self._changed = on_account_change or (lambda _name: None)

    # -- accounts ------------------------------------------------------------------

    def accounts(self, actor: Actor) -> list[Account]:
        """Every account of the built-in store (users and robots), by name."""
        actor.require_admin()
        return self.store.accounts.list()

    def accounts_page(
        self, actor: Actor, n: int, last: str | None = None
    ) -> tuple[list[Account], str | None]:
        """A page of :meth:`accounts`, and the name to continue after (None at the end)."""
        actor.require_admin()
        return self.store.accounts.page(n, last)

    def account(self, actor: Actor, name: str) -> Account:
        """One account (NotFoundError when there is none)."""
        actor.require_admin()
        return self.store.accounts.require(name)

    def create_user(
        self, actor: Actor, name: str, *, password: str | None = None, admin: bool = False
    ) -> tuple[Account, str | None]:
        """Add a user; without ``password`` one is generated and returned (show it once).

        Raises InvalidNameError (bad name), ValueError (empty or over 72 bytes),
        ConflictError (taken)."""
        actor.require_admin()
        generated = generate_password() if password is None else None
        hashed = hash_password(password if password is not None else str(generated))
        account = self.store.accounts.create(name, password_hash=hashed, admin=admin)
        self._record(actor, "user.add", name, admin=admin, password_generated=generated is not None)
        return account, generated

    def create_robot(self, actor: Actor, name: str) -> Account:
        """Add a robot account: no password, only tokens (:meth:`create_robot_token`)."""
        actor.require_admin()
        account = self.store.accounts.create(name, kind=AccountKind.ROBOT)
        self._record(actor, "user.add", name, kind="robot")
        return account

    def set_admin(self, actor: Actor, name: str, admin: bool) -> Account:
        """Make an account an admin, or no longer one (never yourself, never the last)."""
        actor.require_admin()
        account = self.store.accounts.require(name)
        if not admin and account.admin:
            self._not_self(actor, name, "remove your own admin flag")
            self._not_last_admin(account)
        self.store.accounts.set_admin(name, admin)
        self._changed(name)
        self._record(actor, "user.admin", name, admin=admin)
        return self.store.accounts.require(name)

    def set_disabled(self, actor: Actor, name: str, disabled: bool) -> Account:
        """Disable an account (its password, tokens, sessions and issued registry tokens
        stop working: logins at once, issued tokens within seconds) or enable it again."""
        actor.require_admin()
        account = self.store.accounts.require(name)
        if disabled:
            self._not_self(actor, name, "disable your own account")
            if account.admin:
                self._not_last_admin(account)
        changed = self.store.accounts.set_disabled(name, disabled)
        self._changed(name)
        if changed:
            self._record(actor, "user.disable" if disabled else "user.enable", name)
        return self.store.accounts.require(name)

    def reset_password(self, actor: Actor, name: str, password: str | None = None) -> str | None:
        """Set a user's password (generated and returned when not given); ends its docker
        sessions, as ``hatchway user passwd`` does. Robots have none (NotApplicable)."""
        actor.require_admin()
        account = self.store.accounts.require(name)
        if account.robot:
            raise NotApplicable(f"{name!r} is a robot account: it has no password, only tokens")
        generated = generate_password() if password is None else None
        hashed = hash_password(password if password is not None else str(generated))
        self.store.accounts.set_password(name, hashed)  # revokes its refresh tokens
        self._changed(name)
        self._record(actor, "user.passwd", name, password_generated=generated is not None)
        return generated

    def delete_account(self, actor: Actor, name: str) -> None:
        """Delete an account: its access tokens, refresh tokens (sessions) and group
        memberships go with it; registry tokens already issued stop within seconds."""
        actor.require_admin()
        account = self.store.accounts.require(name)
        self._not_self(actor, name, "delete your own account")
        if account.admin:
            self._not_last_admin(account)
        self.store.accounts.delete(name)
        self._changed(name)
        self._record(actor, "user.del", name, kind=account.kind.value)

    def _not_self(self, actor: Actor, name: str, what: str) -> None:
        if name == actor.name:
            raise ConflictError(f"you cannot {what}; ask another admin")

    def _not_last_admin(self, account: Account) -> None:
        others = [
            a
            for a in self.store.accounts.list()
            if a.admin and not a.disabled and a.name != account.name
        ]
        if not others:
            raise ConflictError(f"{account.name!r} is the last enabled admin account")

    # -- groups --------------------------------------------------------------------

    def groups(self, actor: Actor) -> list[Group]:
        """Every group with its members."""
        actor.require_admin()
        return self.store.accounts.list_groups()

    def group(self, actor: Actor, name: str) -> Group:
        """One group with its members (NotFoundError when there is none)."""
        actor.require_admin()
        for found in self.store.accounts.list_groups():
            if found.name == name:
                return found
        raise NotFoundError(f"no group named {name!r}")

    def create_group(self, actor: Actor, name: str) -> Group:
        """Create a group (InvalidNameError, ConflictError when taken)."""
        actor.require_admin()
        self.store.accounts.create_group(name)
        self._record(actor, "group.add", None, group=name)
        return self.group(actor, name)

    def delete_group(self, actor: Actor, name: str) -> None:
        """Delete a group (its members' accounts stay)."""
        actor.require_admin()
        self.store.accounts.delete_group(name)
        self._record(actor, "group.del", None, group=name)

    def add_member(self, actor: Actor, group: str, account: str) -> bool:
        """Add ``account`` to ``group``; False if it was a member already."""
        actor.require_admin()
        added = self.store.accounts.add_member(group, account)
        self._changed(account)
        if added:
            self._record(actor, "group.member.add", account, group=group)
        return added

    def remove_member(self, actor: Actor, group: str, account: str) -> bool:
        """Remove ``account`` from ``group``; False if it was not a member."""
        actor.require_admin()
        removed = self.store.accounts.remove_member(group, account)
        self._changed(account)
        if removed:
            self._record(actor, "group.member.remove", account, group=group)
        return removed

    # -- everyone's tokens -----------------------------------------------------------

    def tokens(
        self, actor: Actor, account: str | None = None, *, include_inactive: bool = False
    ) -> list[AccessToken]:
        """Access tokens of every account (or one), never their secrets."""
        actor.require_admin()
        if account is not None:
            self.store.accounts.require(account)
        return self.store.tokens.list(account, include_inactive=include_inactive)

    def revoke_token(self, actor: Actor, account: str, ref: str) -> AccessToken:
        """Revoke ``account``'s token by id or live name (and sessions got with it)."""
        actor.require_admin()
        record = self.store.tokens.revoke(account, ref)
        self._record(actor, "token.revoke", account, token_id=record.id, token_name=record.name)
        return record

    def create_robot_token(
        self,
        actor: Actor,
        robot: str,
        *,
        name: str,
        scopes: list[str],
        expires: str | None = DEFAULT_ROBOT_EXPIRY,
    ) -> tuple[AccessToken, str]:
        """A token for a robot account (users make their own: ``/me/tokens``); the
        secret is returned once. Same scope grammar and limits as ``hatchway token create``."""
        actor.require_admin()
        lifetime = parse_expiry(expires) if expires is not None else None  # ValueError
        account = self.store.accounts.require(robot)
        if not account.robot:
            raise NotApplicable(
                f"{robot!r} is a user: users make their own tokens (POST /api/v1/me/tokens)"
            )
        parse_token_scopes(scopes)  # ScopeError before anything is stored
        record, secret = create_token(
            self.store, robot, name=name, scopes=scopes, lifetime=lifetime
        )
        self._record(
            actor,
            "token.create",
            robot,
            token_id=record.id,
            token_name=record.name,
            scopes=list(record.scopes),
            expires=record.expires_at.isoformat() if record.expires_at else "never",
        )
        return record, secret

    # -- audit ---------------------------------------------------------------------

    def _record(
        self,
        actor: Actor,
        event: str,
        account: str | None,
        outcome: Outcome = Outcome.SUCCESS,
        **detail: Any,
    ) -> None:
        self._audit(actor_event(actor, event, account, outcome, **detail))


def actor_event(
    actor: Actor,
    event: str,
    account: str | None,
    outcome: Outcome = Outcome.SUCCESS,
    **detail: Any,
) -> AuditEvent:
    """An audit event for a change ``actor`` made (``detail.by``, ``via``, ``auth``)."""
    return AuditEvent(
        event=event,
        outcome=outcome,
        account=account,
        client_addr=actor.client.address,
        user_agent=actor.client.user_agent,
        detail={"by": actor.name, "via": actor.via, "auth": actor.auth, **detail},
    )
