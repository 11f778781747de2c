"""What the store hands out: frozen records (no live rows) and the store's errors.

Hashes are excluded from ``repr`` so a record logged by mistake leaks nothing useful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class MetadataError(Exception):
    """Base of the store's errors; the message is fit for an operator."""


class NotFoundError(MetadataError):
    pass


class ConflictError(MetadataError):
    """The name is taken (account, group, live token name)."""


class InvalidNameError(MetadataError, ValueError):
    pass


class AccountKind(StrEnum):
    USER = "user"
    ROBOT = "robot"


# Login names: what docker login and htpasswd accept, minus ':' and whitespace.
ACCOUNT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
GROUP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Token names start with a letter so they never read as a token id.
TOKEN_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


def check_name(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not pattern.fullmatch(value):
        raise InvalidNameError(f"invalid {kind} name {value[:140]!r}: expected {pattern.pattern}")
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def _active(revoked_at: datetime | None, expires_at: datetime | None, now: datetime | None) -> bool:
    """Neither revoked nor expired: the one rule for access and refresh tokens alike."""
    return revoked_at is None and (expires_at is None or expires_at > (now or utcnow()))


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    kind: AccountKind
    admin: bool
    groups: frozenset[str]
    created_at: datetime
    password_hash: str | None = field(default=None, repr=False)
    password_changed_at: datetime | None = None
    source: str = "local"  # "ldap": a directory account (no password here)
    disabled_at: datetime | None = None

    @property
    def robot(self) -> bool:
        return self.kind is AccountKind.ROBOT

    @property
    def disabled(self) -> bool:
        """Disabled by an admin: its password, tokens and sessions are all refused."""
        return self.disabled_at is not None


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    members: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A personal access token or robot token (the secret itself is never stored)."""

    id: int
    account: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_addr: str | None

    def active(self, now: datetime | None = None) -> bool:
        return _active(self.revoked_at, self.expires_at, now)


@dataclass(frozen=True, slots=True)
class RefreshToken:
    id: int
    subject: str
    backend: str
    client_id: str
    access_token_id: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_addr: str | None
    created_addr: str | None = None
    binding: str | None = field(default=None, repr=False)

    def active(self, now: datetime | None = None) -> bool:
        return _active(self.revoked_at, self.expires_at, now)


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  # bad credentials, malformed request
    DENIED = "denied"  # authenticated but not allowed
    THROTTLED = "throttled"
    PARTIAL = "partial"  # a token granted less than was asked for


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing worth a trace; ``detail`` is scrubbed of secrets before it is stored."""

    event: str
    outcome: Outcome | str
    account: str | None = None
    client_addr: str | None = None
    user_agent: str | None = None
    repository: str | None = None
    scopes_requested: tuple[str, ...] = ()
    scopes_granted: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    time: datetime
    event: str
    outcome: str
    account: str | None
    client_addr: str | None
    user_agent: str | None
    repository: str | None
    scopes_requested: tuple[str, ...]
    scopes_granted: tuple[str, ...]
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccessRuleRecord:
    """An access rule kept in the database: ``rule`` is one ``access:`` entry, as given."""

    id: int
    position: int
    rule: dict[str, Any]
    created_at: datetime
    comment: str | None = None
