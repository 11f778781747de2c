"""Talking to an LDAP directory (python-ldap over Debian's libldap): pooled connections,
timeouts, filters built from escaped input, group lookups.

python-ldap's calls block, so every operation runs on this module's own thread pool
(``poolsize`` threads) and the caller waits at most about ``timeout``: a directory that
stops answering gives :class:`~hatchway.auth.identity.base.IdentityUnavailable`, never a
hung request, and it cannot starve the server's other threads. Two pools of connections,
``poolsize`` each, are kept open: one bound as ``binddn`` for searches, one for the users'
own binds (a connection a user bound on is never used to search). So a returning user's
password check is a single bind on an open connection: one round trip.

Values placed into filters are escaped (RFC 4515: ``* ( ) \\`` and NUL as ``\\HH``;
other characters, UTF-8 included, pass as they are). DNs of groups are compared in a
normal form: parsed, then written back without spaces and in lowercase.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import ldap
import ldap.dn
import ldap.filter

from hatchway.auth.identity.base import IdentityUnavailable
from hatchway.config.identity_ldap import LdapConfig, in_chain

log = logging.getLogger("hatchway.auth.ldap")

T = TypeVar("T")
# AD's userAccountControl flag for a disabled account.
_ACCOUNTDISABLE = 0x2
_STATUS_ATTRIBUTES = ("userAccountControl", "pwdAccountLockedTime")
# Errors that say the connection (or the server) is unusable, not that the request was bad.
_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    ldap.SERVER_DOWN,
    ldap.TIMEOUT,
    ldap.CONNECT_ERROR,
    ldap.UNAVAILABLE,
    ldap.BUSY,
    ldap.TIMELIMIT_EXCEEDED,
)


def escape(value: str) -> str:
    """``value`` made safe to place into a search filter (RFC 4515)."""
    return str(ldap.filter.escape_filter_chars(value, escape_mode=0))


def normalize_dn(dn: str) -> str:
    """One spelling per DN: ``CN=Devs, OU=Groups`` -> ``cn=devs,ou=groups``."""
    try:
        return str(ldap.dn.dn2str(ldap.dn.str2dn(dn))).lower()
    except ldap.DECODING_ERROR:
        return dn.strip().lower()


@dataclass(frozen=True, slots=True)
class Entry:
    dn: str
    attributes: dict[str, list[bytes]] = field(default_factory=dict)

    def values(self, name: str) -> list[str]:
        for key, values in self.attributes.items():
            if key.lower() == name.lower():
                return [v.decode("utf-8", "replace") for v in values]
        return []

    @property
    def disabled(self) -> bool:
        """AD's ACCOUNTDISABLE flag, or a password-policy lock (OpenLDAP ppolicy)."""
        for flags in self.values("userAccountControl"):
            if flags.strip().lstrip("-").isdigit() and int(flags) & _ACCOUNTDISABLE:
                return True
        return bool(self.values("pwdAccountLockedTime"))


class Pool:
    """Up to ``size`` open connections made by ``connect``; one is checked out per
    operation. A connection that fails with a connection error is dropped, and the
    operation is tried once more on a new one (the server may have restarted)."""

    def __init__(self, name: str, size: int, connect: Callable[[], Any]) -> None:
        self.name = name
        self._connect = connect
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self.opened = 0

    @contextlib.contextmanager
    def connection(self, timeout: float) -> Iterator[Any]:
        if not self._slots.acquire(timeout=timeout):
            raise IdentityUnavailable("the directory is busy: no free connection")
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._open()
            try:
                yield conn
            except _CONNECTION_ERRORS:
                # The server went away (or restarted): the idle ones are as dead as this one.
                _close(conn)
                self.close()
                raise
            except BaseException:
                self._idle.put(conn)  # an answer (wrong password, no such entry): still usable
                raise
            self._idle.put(conn)
        finally:
            self._slots.release()

    def _open(self) -> Any:
        conn = self._connect()
        self.opened += 1
        return conn

    def close(self) -> None:
        while True:
            try:
                _close(self._idle.get_nowait())
            except queue.Empty:
                return


def _close(conn: Any) -> None:
    with contextlib.suppress(ldap.LDAPError):
        conn.unbind_ext_s()


class Directory:
    """The directory as the authenticator needs it: find a user, check a password, list
    groups. Each method blocks (call it from a worker thread) for at most about
    ``timeout`` per round trip; ``round_trips`` counts the requests sent (tests, bench)."""

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.timeout = config.timeout
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.poolsize, thread_name_prefix="ldap"
        )
        self._service = Pool("service", config.poolsize, self._service_connection)
        self._binds = Pool("bind", config.poolsize, self._connection)
        self._count_lock = threading.Lock()
        self.round_trips = 0
        self._groupfilter = config.groupfilter
        if config.groupfilter is not None and config.nestedgroups == "inchain":
            self._groupfilter = in_chain(config.groupfilter)
        wanted = [*_STATUS_ATTRIBUTES]
        if config.groupattribute:
            wanted.append(config.groupattribute)
        self._user_attributes = wanted

    # -- connections ---------------------------------------------------------------

    def _count(self, n: int = 1) -> None:
        with self._count_lock:
            self.round_trips += n

    def _connection(self) -> Any:
        """A new connection: TLS as configured, not bound yet."""
        conn = ldap.initialize(self.config.url)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, self.timeout)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        if self.config.cacert:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, self.config.cacert)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # last: makes the TLS context from the above
        if self.config.starttls:
            self._count()
            conn.start_tls_s()
        return conn

    def _service_connection(self) -> Any:
        conn = self._connection()
        self._count()
        if self.config.binddn is None:
            conn.simple_bind_s("", "")
            return conn
        try:
            conn.simple_bind_s(self.config.binddn, self.bind_password())
        except ldap.INVALID_CREDENTIALS:
            _close(conn)
            log.error("the directory refused the service bind as %s", self.config.binddn)  # noqa: TRY400
            raise IdentityUnavailable("the directory refused hatchway's service bind") from None
        return conn

    def bind_password(self) -> str:
        """Read at each new connection, so a rotated secret file is picked up."""
        assert self.config.bindpasswordfile is not None
        text = Path(self.config.bindpasswordfile).read_text(encoding="utf-8")
        return text.rstrip("\r\n")

    def _run(self, pool: Pool, operation: Callable[[Any], T]) -> T:
        """``operation(connection)`` on this module's threads, within the timeout."""

        def attempt() -> T:
            for retry in (True, False):
                try:
                    with pool.connection(self.timeout) as conn:
                        return operation(conn)
                except _CONNECTION_ERRORS as exc:
                    if not retry:
                        raise IdentityUnavailable(_describe(exc)) from None
                except OSError as exc:  # the bind password file
                    raise IdentityUnavailable(f"cannot read bindpasswordfile: {exc}") from None
            raise AssertionError("unreachable")

        try:
            future = self._executor.submit(attempt)
        except RuntimeError:  # shut down
            raise IdentityUnavailable("the directory client is closed") from None
        try:
            # Connecting, StartTLS, bind and the operation may each take up to a timeout.
            return future.result(timeout=self.timeout * 4 + 1)
        except concurrent.futures.TimeoutError:
            raise IdentityUnavailable("the directory did not answer in time") from None

    def close(self, *, wait: bool = False) -> None:
        """Close the pools; ``wait``: also for this client's threads to end (before a fork)."""
        self._executor.shutdown(wait=wait, cancel_futures=True)
        self._service.close()
        self._binds.close()

    # -- operations ----------------------------------------------------------------

    def probe(self) -> None:
        """Open (and bind) one service connection, or raise IdentityUnavailable."""
        self._run(self._service, lambda conn: None)

    def find_user(self, username: str) -> Entry | None:
        """The one entry ``userfilter`` finds for ``username`` under ``userbase``; None
        when there is none, or more than one (ambiguous: refused, and logged)."""
        filterstr = self.config.userfilter.replace("{username}", escape(username))
        found = self._search(self.config.userbase, filterstr, self._user_attributes, limit=2)
        if len(found) > 1:
            log.warning("userfilter matches %d entries for %r: login refused", len(found), username)
            return None
        return found[0] if found else None

    def check_password(self, dn: str, password: str, before: Callable[[], None]) -> bool:
        """Bind as ``dn`` with ``password``. ``before`` runs once a connection is open,
        just before the password is sent (the login throttle counts the attempt there)."""
        if not password:
            return False  # an empty password is an anonymous bind (RFC 4513): never a login

        def bind(conn: Any) -> bool:
            before()
            self._count()
            try:
                conn.simple_bind_s(dn, password)
            except (ldap.INVALID_CREDENTIALS, ldap.UNWILLING_TO_PERFORM, ldap.INVALID_DN_SYNTAX):
                return False
            return True

        return self._run(self._binds, bind)

    def groups(self, user: Entry, username: str) -> frozenset[str]:
        """The user's groups as normalized DNs: direct ones, and nested ones as configured."""
        config = self.config
        direct: set[str] = set()
        if config.groupattribute:
            direct.update(user.values(config.groupattribute))
        elif self._groupfilter is not None and config.groupbase is not None:
            filterstr = self._groupfilter.replace("{dn}", escape(user.dn))
            filterstr = filterstr.replace("{username}", escape(username))
            direct.update(e.dn for e in self._search(config.groupbase, filterstr, ["1.1"]))
        found = {normalize_dn(dn) for dn in direct}
        if config.nestedgroups == "recursive":
            found |= self._ancestors(direct)
        return frozenset(found)

    def _ancestors(self, groups: set[str]) -> set[str]:
        """Groups that contain ``groups``, level by level, at most ``nestingdepth`` levels;
        a cycle ends where it comes back to a group already seen."""
        config = self.config
        seen = {normalize_dn(g) for g in groups}
        frontier = set(groups)
        found: set[str] = set()
        for _ in range(config.nestingdepth):
            parents: set[str] = set()
            if config.groupattribute:
                for dn in sorted(frontier):
                    entry = self._read(dn, [config.groupattribute])
                    if entry is not None:
                        parents.update(entry.values(config.groupattribute))
            elif self._groupfilter is not None and config.groupbase is not None:
                items = "".join(
                    self._groupfilter.replace("{dn}", escape(dn)) for dn in sorted(frontier)
                )
                filterstr = f"(|{items})" if len(frontier) > 1 else items
                parents.update(e.dn for e in self._search(config.groupbase, filterstr, ["1.1"]))
            fresh = {p for p in parents if normalize_dn(p) not in seen}
            if not fresh:
                break
            seen |= {normalize_dn(p) for p in fresh}
            found |= {normalize_dn(p) for p in fresh}
            frontier = fresh
        else:
            log.warning("group nesting deeper than nestingdepth=%d: stopped", config.nestingdepth)
        return found

    def _read(self, dn: str, attributes: list[str]) -> Entry | None:
        def read(conn: Any) -> Entry | None:
            self._count()
            try:
                result = conn.search_ext_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", attributes)
            except ldap.NO_SUCH_OBJECT:
                return None
            return next((Entry(d, a) for d, a in result if d is not None), None)

        return self._run(self._service, read)

    def _search(
        self, base: str, filterstr: str, attributes: list[str], limit: int = 0
    ) -> list[Entry]:
        def search(conn: Any) -> list[Entry]:
            self._count()
            try:
                result = conn.search_ext_s(
                    base,
                    ldap.SCOPE_SUBTREE,
                    filterstr,
                    attributes,
                    timeout=self.timeout,
                    sizelimit=limit,
                )
            except ldap.SIZELIMIT_EXCEEDED:
                return [Entry("?"), Entry("?")]  # more than asked for: the caller refuses
            except ldap.NO_SUCH_OBJECT:
                log.warning("search base %s does not exist in the directory", base)
                return []
            except ldap.FILTER_ERROR:
                log.error("the directory refused the filter %r", filterstr)  # noqa: TRY400
                return []
            # Search references (dn None) are skipped: referrals are not followed.
            return [Entry(dn, attrs) for dn, attrs in result if dn is not None]

        return self._run(self._service, search)


def _describe(exc: Exception) -> str:
    """A one-line reason from a python-ldap error (its args carry a dict)."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    desc = str(info.get("desc", type(exc).__name__))
    extra = str(info.get("info", "")).strip()
    return f"the directory is unreachable: {desc}" + (f" ({extra})" if extra else "")
