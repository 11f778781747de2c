"""Accounts from an Apache htpasswd file with bcrypt entries (``htpasswd -B``).

The file is re-read when it changes (inode, size or mtime), checked at most once a
second on the request path. Other hash kinds (MD5 ``$apr1$``, SHA1, crypt) are skipped
with a warning: they are too cheap to brute-force. A file that cannot be read or parsed
is refused with an error and the users loaded before stay in force, so a botched edit
does not lock everyone out. At start, the same problems stop the server instead.
Passwords are checked as Apache does: only the first 72 bytes count (bcrypt's limit).

User names follow the local accounts' grammar (no ``/``: ``alice/ci`` would own
``alice/ci/*`` inside alice's namespace); other lines are skipped with a warning that
names the line. A name that is also a local account (``reserved``) is refused by both
backends, so neither password can act as the other account.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from hatchway.auth.credentials.passwords import PasswordVerifier, bcrypt_cost
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import Principal
from hatchway.metadata.records import ACCOUNT_NAME_RE

log = logging.getLogger(__name__)

_Signature = tuple[int, int, int, int]


class HtpasswdError(Exception):
    """The file cannot be used; the message names the file and the line."""


def parse_htpasswd(text: str, source: str) -> tuple[dict[str, str], list[str]]:
    """``user:hash`` lines -> (bcrypt users, warnings about skipped lines)."""
    users: dict[str, str] = {}
    warnings: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise HtpasswdError(f"{source}:{lineno}: expected user:hash")
        if user in users:
            raise HtpasswdError(f"{source}:{lineno}: user {user!r} appears twice")
        if not ACCOUNT_NAME_RE.fullmatch(user):
            warnings.append(
                f"{source}:{lineno}: user {user[:64]!r} ignored: not a valid account name "
                "(letters, digits and . _ @ + -, starting with a letter or digit; no /)"
            )
            continue
        if bcrypt_cost(hashed) is None:
            warnings.append(
                f"{source}:{lineno}: user {user!r} ignored: not a bcrypt hash "
                "(hatchway accepts only bcrypt; make the entry with htpasswd -B)"
            )
            continue
        users[user] = hashed
    return users, warnings


class HtpasswdAuthenticator:
    backend = "htpasswd"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        verifier: PasswordVerifier | None = None,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        reserved: Callable[[str], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        # Is this name an account of another backend (the local store)? Then it is refused.
        self.reserved = reserved
        self.verifier = verifier or PasswordVerifier(truncate=True)
        self.check_interval = check_interval
        self._clock = clock
        self._users: dict[str, str] = {}
        self._signature: _Signature | None = None
        self._last_error: str | None = None
        self._lock = threading.Lock()
        self._next_check = clock() + check_interval
        self._load(initial=True)

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._users)

    def has_user(self, name: str) -> bool:
        self.refresh()
        return name in self._users

    def authenticate(self, username: str, secret: str, client: ClientInfo) -> Principal | None:
        self.refresh()
        if not username or not secret or len(secret) > 1024:
            return None
        if self._clashes(username):
            return None
        stored = self._users.get(username)
        if not self.verifier.verify(username, secret, stored):
            return None
        return Principal(subject=username)

    def resolve(self, subject: str, token_id: str | None = None) -> Principal | None:
        self.refresh()
        if token_id is not None or subject not in self._users or self._clashes(subject):
            return None
        return Principal(subject=subject)

    def credential_binding(self, subject: str) -> bytes | None:
        """The user's line as it is now (``user:hash``), or None if the user is gone.

        A refresh token is bound to it when issued, so a changed password (a new hash) or
        a removed line ends the user's sessions at their next use.
        """
        self.refresh()
        hashed = self._users.get(subject)
        if hashed is None or self._clashes(subject):
            return None
        return f"{subject}:{hashed}".encode()

    def _clashes(self, name: str) -> bool:
        """Is ``name`` in the file and a local account too? (Logged: the one place that
        says why such a login fails, whichever backend's password was tried.)"""
        if self.reserved is None or name not in self._users or not self.reserved(name):
            return False
        log.warning(
            "login as %r refused: the name is both a local account and a user in %s; "
            "rename or remove one of them",
            name,
            self.path,
        )
        return True

    def refresh(self) -> None:
        """Re-read the file if it changed; a stat at most every ``check_interval`` s."""
        now = self._clock()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return  # not due, or another thread is at it: use the current set
        try:
            if now >= self._next_check:
                self._next_check = now + self.check_interval
                self._load(initial=False)
        finally:
            self._lock.release()

    def _load(self, *, initial: bool) -> None:
        signature: _Signature | None = None
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                signature = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
                if signature == self._signature:
                    return
                data = fh.read()
            users, warnings = parse_htpasswd(data.decode("utf-8"), str(self.path))
        except (OSError, UnicodeDecodeError, HtpasswdError) as exc:
            reason = str(exc) if isinstance(exc, HtpasswdError) else f"{self.path}: {exc}"
            if initial:
                raise HtpasswdError(f"cannot use htpasswd file: {reason}") from None
            # Once per bad version of the file (or per distinct error while it's unreadable).
            if signature is not None or reason != self._last_error:
                log.error(  # noqa: TRY400 (an operator error: no traceback)
                    "htpasswd file refused: %s; keeping the %d users loaded before",
                    reason,
                    len(self._users),
                )
            self._last_error = reason
            self._signature = signature
            return
        for warning in warnings:
            log.warning("%s", warning)
        if self.reserved is not None:
            # Names new to this load only: a reload must not look up every user again.
            added = users.keys() - self._users.keys()
            for name in sorted(n for n in added if self.reserved(n)):
                log.warning(
                    "%s: user %r is also a local account: both are refused until one of "
                    "them is renamed or removed",
                    self.path,
                    name,
                )
        after = os.stat(self.path)
        # Written while we read: take it, but read again at the next check.
        same = (after.st_ino, after.st_dev, after.st_size, after.st_mtime_ns) == signature
        self._signature = signature if same else None
        costs = Counter(bcrypt_cost(h) for h in users.values())
        if costs:
            self.verifier.dummy_rounds = max(costs.most_common(1)[0][0] or 4, 4)
        self._users = users
        self._last_error = None
        self.verifier.clear()
        log.info("loaded %d users from %s", len(users), self.path)
