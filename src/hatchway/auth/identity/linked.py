"""What the LDAP and OIDC sources share: accounts linked to an outside identity
(``external_identities``), remembered for about a second, and checked with the outside
source again once ``refresh_interval`` has passed (one thread per account at a time).

A subclass names its ``backend``, sets ``admingroups`` and ``refresh_interval``, and
implements :meth:`_recheck` (ask the outside source, update or disable the link).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import Principal
from hatchway.metadata import Account, MetadataStore
from hatchway.metadata.external import ExternalIdentity
from hatchway.metadata.records import AuditEvent, Outcome, utcnow

_CACHE_TTL = 1.0
_CACHE_SIZE = 10_000


class LinkedSource:
    backend: str
    # A link the outside source disabled: asked again at the next interval (a directory
    # may enable the account again), or off until the person signs in again (OIDC).
    recheck_disabled = True

    def __init__(
        self,
        store: MetadataStore,
        *,
        admingroups: frozenset[str],
        refresh_interval: timedelta,
        audit: Callable[[AuditEvent], None] | None = None,
        accounts: Callable[[str], Account | None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``accounts``: how to read an account row (the local backend's, which remembers
        rows for a second); default: the store, each time."""
        self.store = store
        self.admingroups = admingroups
        self.refresh_interval = refresh_interval
        self._audit = audit
        self._accounts = accounts or store.accounts.get
        self._clock = clock
        self._links: dict[str, tuple[float, ExternalIdentity | None]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # -- for the local backend (PATs of linked accounts) ------------------------------

    def current(self, account: Account, principal: Principal) -> Principal | None:
        """``principal`` (from one of ``account``'s tokens) with its outside groups and
        admin flag as they are now; None once the outside source has dropped it."""
        link = self._link(account.name)
        if link is None:
            return None
        found = self.current_link(link)
        if found is None:
            return None
        return dataclasses.replace(principal, groups=found.groups, admin=found.admin)

    def current_link(self, link: ExternalIdentity) -> Principal | None:
        """Ask the outside source again when the last check is ``refresh_interval`` old."""
        if self._clock() - link.checked_at < self.refresh_interval:
            return None if link.disabled else self._principal(link)
        if link.disabled and not self.recheck_disabled:
            return None
        with self._lock_for(link.account):
            again = self._link(link.account, cached=False)  # another thread may have done it
            if again is None or (again.disabled and not self.recheck_disabled):
                return None
            if self._clock() - again.checked_at < self.refresh_interval:
                return None if again.disabled else self._principal(again)
            return self._recheck(again)

    def _recheck(self, link: ExternalIdentity) -> Principal | None:
        raise NotImplementedError

    # -- internals ----------------------------------------------------------------------

    def _principal(self, link: ExternalIdentity) -> Principal:
        account = self._accounts(link.account)
        local_groups = account.groups if account is not None else frozenset()
        admin = bool(link.groups & self.admingroups)
        return Principal(subject=link.account, groups=link.groups | local_groups, admin=admin)

    def _link(self, name: str, *, cached: bool = True) -> ExternalIdentity | None:
        """The account's outside state, remembered for about a second."""
        now = time.monotonic()
        hit = self._links.get(name)
        if cached and hit is not None and now - hit[0] < _CACHE_TTL:
            return hit[1]
        link = self.store.external.get(name)
        if link is not None and link.source != self.backend:
            link = None
        if len(self._links) >= _CACHE_SIZE:
            self._links.clear()
        self._links[name] = (now, link)
        return link

    def _forget(self, name: str) -> None:
        self._links.pop(name, None)

    def _lock_for(self, name: str) -> threading.Lock:
        with self._locks_lock:
            if len(self._locks) >= _CACHE_SIZE:
                self._locks.clear()
            return self._locks.setdefault(name, threading.Lock())

    def _event(
        self, event: str, account: str, client: ClientInfo | None, detail: dict[str, object]
    ) -> None:
        if self._audit is None:
            return
        self._audit(
            AuditEvent(
                event,
                Outcome.SUCCESS,
                account,
                client.address if client else None,
                client.user_agent if client else None,
                detail=detail,
            )
        )
