"""Accounts from an LDAP directory or Active Directory (``identity.ldap``).

A login is a search as the service account (``userfilter`` with the escaped name), then
a bind as the entry found with the password given. The first successful login makes a
federated account (``source`` ``ldap``, no password here, the name as typed in
lowercase); each login records the user's groups, as full DNs (two ``cn=devs`` in
different OUs are different groups), and sets the account's admin flag from
``admingroups``, both ways. Access rules name the
groups by DN: ``group: "cn=devs,ou=groups,dc=example,dc=com"`` (lowercase, no spaces).

Cost: a returning user whose groups were read less than ``membershipcache`` ago (60 s)
is checked with one bind to the DN already known, on an open connection: one round trip;
and not at all when the same password succeeded within that window (remembered as an HMAC
under a per-process key, never the password): a push's burst of grants binds once. So a
password changed or an account disabled in the directory stops working for new grants at
the end of the window at the latest, as group changes do.

Accounts that only use tokens (PATs, refresh tokens) are checked against the directory
again once ``refreshinterval`` (15 min at most) has passed since the last check: a user
the directory no longer finds, or finds disabled (filtered out by ``userfilter``, AD's
ACCOUNTDISABLE flag, a ppolicy lock) is refused from then on, and so are their tokens.

The local database comes first (the server's wiring orders the backends): a local
account's name is never looked up in the directory, so the local admin signs in while
the directory is down. LDAP users then get :class:`IdentityUnavailable` (a 503).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from hatchway.auth.credentials.passwords import before_check
from hatchway.auth.credentials.pat import looks_like_token
from hatchway.auth.identity.base import ClientInfo, IdentityUnavailable
from hatchway.auth.identity.ldapclient import Directory, Entry, normalize_dn
from hatchway.auth.identity.linked import LinkedSource
from hatchway.auth.principal import Principal
from hatchway.metadata import Account, ConflictError, MetadataStore
from hatchway.metadata.external import ExternalIdentity
from hatchway.metadata.records import ACCOUNT_NAME_RE, AuditEvent, utcnow

log = logging.getLogger("hatchway.auth.ldap")

LDAP_BACKEND = "ldap"
_MAX_SECRET = 1024
_MAX_NAME = 255
_CACHE_SIZE = 10_000


def _printable(name: str) -> bool:
    return all(ch.isprintable() for ch in name)


class LdapAuthenticator(LinkedSource):
    backend = LDAP_BACKEND

    def __init__(
        self,
        directory: Directory,
        store: MetadataStore,
        *,
        reserved: Callable[[str], bool] | None = None,
        audit: Callable[[AuditEvent], None] | None = None,
        accounts: Callable[[str], Account | None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        config = directory.config
        super().__init__(
            store,
            admingroups=frozenset(normalize_dn(dn) for dn in config.admingroups),
            refresh_interval=timedelta(seconds=config.refreshinterval),
            audit=audit,
            accounts=accounts,
            clock=clock,
        )
        self.directory = directory
        # Is this name an account of another backend (local, htpasswd)? Then not ours.
        self.reserved = reserved
        self.membership_cache = timedelta(seconds=config.membershipcache)
        # Passwords that the directory accepted lately (HMAC -> (DN, until)): a burst of
        # grants (a push asks for several) binds once.
        self._key = os.urandom(32)
        self._verified: dict[bytes, tuple[str, float]] = {}
        self._verified_lock = threading.Lock()

    # -- the Authenticator protocol --------------------------------------------------

    def authenticate(self, username: str, secret: str, client: ClientInfo) -> Principal | None:
        # Refused before any bind: an empty password would be an anonymous bind.
        if not username or not secret or len(secret) > _MAX_SECRET or len(username) > _MAX_NAME:
            return None
        if not _printable(username) or looks_like_token(secret):
            return None  # NUL or control characters; a hatchway token is no LDAP password
        # Directories match names without regard to case: so does the account's name.
        name = username.lower()
        if self.reserved is not None and (self.reserved(username) or self.reserved(name)):
            return None
        count = before_check.get() or _nothing
        link = self._link(name)
        now = self._clock()
        key = self._credential_key(name, secret)
        if link is not None and not link.disabled and now - link.checked_at < self.membership_cache:
            # A returning user: the password that succeeded a moment ago, or one bind.
            if self._recently_verified(key, link.external_id):
                return self._principal(link)
            if not self.directory.check_password(link.external_id, secret, count):
                return None
            self._remember(key, link)
            return self._principal(link)
        entry = self.directory.find_user(username)
        if entry is None or entry.disabled:
            count()  # counted like a wrong password: no telling which names exist
            return None
        if not self.directory.check_password(entry.dn, secret, count):
            return None
        groups = self.directory.groups(entry, username)
        linked = self._record(name, entry, groups, client)
        if linked is None:
            return None
        self._remember(key, linked)
        return self._principal(linked)

    def resolve(self, subject: str, token_id: str | None = None) -> Principal | None:
        """A refresh token from an LDAP login: the account as the directory has it now."""
        if token_id is not None:
            return None  # logins with a PAT belong to the local backend
        link = self._link(subject, cached=False)
        if link is None:
            return None
        return self.current_link(link)

    # -- internals -------------------------------------------------------------------

    def _recheck(self, link: ExternalIdentity) -> Principal | None:
        now = self._clock()
        entry = self.directory.find_user(link.account)
        moved = entry is not None and normalize_dn(entry.dn) != normalize_dn(link.external_id)
        if entry is None or entry.disabled or moved:
            if not link.disabled:
                log.info("LDAP account %s is gone or disabled in the directory", link.account)
                self._event("account.disable", link.account, None, {"source": LDAP_BACKEND})
            self.store.external.disable(link.account_id, now)
            self._forget(link.account)
            return None
        groups = self.directory.groups(entry, link.account)
        self._update(link, entry.dn, groups, now, None)
        fresh = self._link(link.account, cached=False)
        return self._principal(fresh) if fresh is not None and not fresh.disabled else None

    def _record(
        self, username: str, entry: Entry, groups: frozenset[str], client: ClientInfo
    ) -> ExternalIdentity | None:
        """Store what the directory said at this login: make the account the first time."""
        now = self._clock()
        admin = bool(groups & self.admingroups)
        link = self.store.external.find(LDAP_BACKEND, entry.dn)
        if link is None:
            link = self._link(username, cached=False)  # the entry moved (a new DN)
        if link is not None:
            self._update(link, entry.dn, groups, now, client)
            return self._link(link.account, cached=False)
        if not ACCOUNT_NAME_RE.fullmatch(username):
            log.warning(
                "LDAP user %r cannot be a hatchway account: names are letters, digits and "
                ". _ @ + -, starting with a letter or digit",
                username[:64],
            )
            return None
        try:
            created = self.store.external.create(
                username,
                source=LDAP_BACKEND,
                external_id=entry.dn,
                groups=groups,
                admin=admin,
                now=now,
            )
        except ConflictError:
            # Made by a parallel first login, or the name is another backend's account.
            found = self._link(username, cached=False)
            if found is None or normalize_dn(found.external_id) != normalize_dn(entry.dn):
                log.warning("LDAP user %r: an account of that name exists; refused", username)
                return None
            return found
        self._forget(username)
        self._forget(created.account)
        log.info("created account %s for LDAP entry %s", username, entry.dn)
        self._event("account.create", username, client, {"source": LDAP_BACKEND, "admin": admin})
        return created

    def _update(
        self,
        link: ExternalIdentity,
        dn: str,
        groups: frozenset[str],
        now: datetime,
        client: ClientInfo | None,
    ) -> None:
        admin = bool(groups & self.admingroups)
        account = self.store.accounts.get(link.account)
        was_admin = account.admin if account is not None else False
        self.store.external.update(
            link.account_id, external_id=dn, groups=groups, admin=admin, now=now
        )
        if admin != was_admin:
            log.info("LDAP account %s: admin %s (admingroups)", link.account, admin)
            self._event("account.admin", link.account, client, {"admin": admin, "source": "ldap"})
        self._forget(link.account)

    def _credential_key(self, name: str, secret: str) -> bytes:
        """What a verified password is remembered under: an HMAC keyed per process, so
        the password itself is never kept."""
        data = name.encode("utf-8", "surrogatepass")
        message = len(data).to_bytes(4, "big") + data + secret.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _recently_verified(self, key: bytes, dn: str) -> bool:
        hit = self._verified.get(key)
        return hit is not None and hit[1] > time.monotonic() and hmac.compare_digest(hit[0], dn)

    def _remember(self, key: bytes, link: ExternalIdentity) -> None:
        """Until the end of the link's ``membershipcache`` window, never beyond: then the
        next login goes to the directory again, for the password and the groups."""
        left = (link.checked_at + self.membership_cache - self._clock()).total_seconds()
        if left <= 0:
            return
        with self._verified_lock:
            if len(self._verified) >= _CACHE_SIZE:
                now = time.monotonic()
                self._verified = {k: v for k, v in self._verified.items() if v[1] > now}
                if len(self._verified) >= _CACHE_SIZE:
                    self._verified.clear()
            self._verified[key] = (link.external_id, time.monotonic() + left)

    def probe(self) -> str | None:
        """Why the directory cannot be used now, or None (start-up check)."""
        try:
            self.directory.probe()
        except IdentityUnavailable as exc:
            return str(exc)
        return None

    def close(self) -> None:
        self.directory.close()


def _nothing() -> None:
    return None
