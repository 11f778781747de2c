"""Personal access tokens: the password of ``docker login`` for scripts, and robots' only one.

A token is ``hw_`` + 32 random bytes (url-safe base64), shown once; the store keeps its
SHA-256, which is enough for a secret this strong and costs microseconds, not bcrypt's
milliseconds. Scopes are kept as the strings given (Docker's grammar, plus ``*``/``?``
globs in the name) and parsed here by :func:`parse_token_scope`, which the strict
``auth.access.parse_scope`` would refuse; matching the globs is the policy engine's job.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from hatchway.auth.access import Access, Action, Resource, ScopeError, parse_scope
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import Kind, Principal
from hatchway.metadata import AccessToken, Account, MetadataStore
from hatchway.metadata.records import utcnow
from hatchway.metadata.tokens import USE_RECORD_INTERVAL

log = logging.getLogger(__name__)

TOKEN_PREFIX = "hw_"  # noqa: S105 (a prefix, not a secret)
_TOKEN_RE = re.compile(r"hw_[A-Za-z0-9_-]{43}")
_RESOURCE_TYPES = frozenset({"repository", "registry"})
_ACTIONS = frozenset(a.value for a in Action)
_EXPIRY_RE = re.compile(r"(\d+)([wdhms])")
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def new_secret(prefix: str = TOKEN_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """What the store keeps and looks up: hex SHA-256 of the secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(secret: str) -> bool:
    return _TOKEN_RE.fullmatch(secret) is not None


def parse_token_scope(value: str) -> Access:
    """Parse ``type:name:actions`` where the name may hold ``*`` and ``?`` globs.

    The name is checked by the strict grammar with each glob read as a letter, so
    ``alice/*`` and ``team-*/app`` pass and ``alice//x`` does not. Only known resource
    types and actions are taken: a typo would otherwise grant nothing, silently.
    """
    head, sep, rest = value.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not name:
        raise ScopeError(f"malformed scope {value[:200]!r}: expected type:name:actions")
    stand_in = parse_scope(f"{head}:{name.replace('*', 'a').replace('?', 'a')}:{actions}")
    if stand_in.resource.base_type not in _RESOURCE_TYPES:
        raise ScopeError(f"scope {value[:200]!r}: resource type must be repository or registry")
    unknown = stand_in.actions - _ACTIONS
    if unknown or not stand_in.actions:
        raise ScopeError(
            f"scope {value[:200]!r}: actions must be some of pull, push, delete, *"
            f" (got {','.join(sorted(unknown)) or 'none'})"
        )
    return Access(Resource(stand_in.resource.type, name), stand_in.actions)


def parse_token_scopes(values: Iterable[str]) -> tuple[Access, ...]:
    """Each value may hold several space-separated scopes; one resource's are merged."""
    merged: dict[Resource, set[str]] = {}
    for value in values:
        for part in value.split():
            access = parse_token_scope(part)
            merged.setdefault(access.resource, set()).update(access.actions)
    return tuple(Access(r, frozenset(a)) for r, a in sorted(merged.items()))


def parse_expiry(value: str) -> timedelta | None:
    """``30d``, ``12h``, ``2w``, ``1d12h`` -> a lifetime; ``never`` -> None."""
    text = value.strip().lower()
    if text == "never":
        return None
    parts = _EXPIRY_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid expiry {value!r}: expected e.g. 30d, 12h, 2w or never")
    seconds = sum(int(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError("the expiry must be in the future")
    return timedelta(seconds=seconds)


def create_token(
    store: MetadataStore,
    account: str,
    *,
    name: str,
    scopes: Iterable[str],
    lifetime: timedelta | None,
) -> tuple[AccessToken, str]:
    """Create a token; returns its record and the secret (to show once, never again)."""
    accesses = parse_token_scopes(scopes)
    if not accesses:
        raise ScopeError("a token needs at least one scope, e.g. repository:alice/*:pull")
    secret = new_secret()
    record = store.tokens.create(
        account,
        name=name,
        token_hash=secret_hash(secret),
        scopes=[a.scope() for a in accesses],
        expires_at=utcnow() + lifetime if lifetime is not None else None,
    )
    return record, secret


def token_principal(token: AccessToken, account: Account) -> Principal:
    return Principal(
        subject=account.name,
        kind=Kind.ROBOT if account.robot else Kind.USER,
        groups=account.groups,
        admin=account.admin,
        token_scopes=parse_token_scopes(token.scopes),
        token_id=str(token.id),
    )


def authenticate_token(
    store: MetadataStore, username: str, secret: str, client: ClientInfo
) -> Principal | None:
    """The principal for a live token of ``username``, or None; records the use."""
    if not looks_like_token(secret):
        return None
    found = store.tokens.find_active(secret_hash(secret))
    if found is None:
        return None
    token, account = found
    if account.disabled:
        return None
    if not hmac.compare_digest(account.name.encode(), username.encode("utf-8", "surrogatepass")):
        return None
    try:
        principal = token_principal(token, account)
    except ScopeError as exc:  # stored before a grammar change; refuse, loudly
        log.error(  # noqa: TRY400 (the message says it all; no traceback)
            "token %d of %r has an unreadable scope: %s", token.id, account.name, exc
        )
        return None
    record_use(store, token, client, utcnow())
    return principal


def record_use(store: MetadataStore, token: AccessToken, client: ClientInfo, now: datetime) -> None:
    """Write last-used at most once per interval: the row we just read says if it's due."""
    last = token.last_used_at
    if last is None or (now - last).total_seconds() >= USE_RECORD_INTERVAL:
        store.tokens.touch(token.id, client.address)
