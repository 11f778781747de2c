"""The access policy in force now: the config file's rules, then the database's.

Rules change without a restart: ``hatchway access rule add`` writes the database, an
operator edits ``config.yml`` and sends SIGHUP. Each worker keeps one compiled
:class:`Policy` and swaps it whole, so a request always sees one consistent set; a
background thread looks for changes at most once per ``interval`` (a ``stat`` of the
config file and a one-row read of the rules' revision), never on the request path.

Anything new is compiled before it replaces anything: a broken config file or a broken
stored rule is refused with an error on the ``hatchway.auth`` logger, and the rules in
force stay in force. No web imports: the HTTP layer calls :meth:`PolicySource.reload`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from hatchway.auth.policy.engine import Policy
from hatchway.auth.policy.load import load_rule
from hatchway.auth.policy.rules import Rule
from hatchway.errors import ConfigError

log = logging.getLogger("hatchway.auth")

CHECK_INTERVAL = 1.0
PolicyProvider = Callable[[], Policy]


class StoredRule(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def rule(self) -> Mapping[str, Any]: ...


class RuleStore(Protocol):
    """What the source needs of ``metadata.rules.AccessRuleStore``."""

    def revision(self) -> int: ...

    def list(self) -> Sequence[StoredRule]: ...


def provider(policy: Policy | PolicyProvider) -> PolicyProvider:
    """A fixed policy as a provider, so callers may hand over either."""
    if isinstance(policy, Policy):
        return lambda: policy
    return policy


def database_rules(rows: Iterable[StoredRule]) -> list[Rule]:
    """Compile stored rules, labelled by id (``database rule 7``), as ``access rule del`` takes."""
    return [load_rule(f"database rule {row.id}", row.rule) for row in rows]


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    """What tells a changed file (an editor's rename changes the inode)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class PolicySource:
    """Call it for the current :class:`Policy` (an attribute read).

    ``reread`` compiles the config file's rules again (raising :class:`ConfigError`);
    it runs when ``path`` changes or on :meth:`reload`. ``store`` holds the database's
    rules; they are read again when its revision changes. Database rules that do not
    compile at construction raise, so a server does not start on them.
    """

    def __init__(
        self,
        config_rules: Sequence[Rule] = (),
        *,
        path: Path | None = None,
        reread: Callable[[], Sequence[Rule]] | None = None,
        store: RuleStore | None = None,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self._path = path if reread is not None else None
        self._reread = reread
        self._store = store
        self._interval = interval
        self._config = tuple(config_rules)
        self._stamp = _stamp(self._path)
        self._revision = -1
        self._unreachable = False  # the database failed the last check (said once)
        self._database: tuple[Rule, ...] = ()
        if store is not None:
            self._revision = store.revision()
            self._database = tuple(database_rules(store.list()))
        self._policy = Policy(self._config).merged(self._database)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._forced = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def __call__(self) -> Policy:
        return self._policy

    @property
    def policy(self) -> Policy:
        return self._policy

    def start(self) -> None:
        """Watch for changes in a daemon thread (start it in the process that serves)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="policy-watch", daemon=True)
            self._thread.start()

    def reload(self) -> None:
        """Re-read everything soon (SIGHUP). Only sets flags: safe from a signal handler."""
        self._forced = True
        self._wake.set()

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopped:
                return
            forced, self._forced = self._forced, False
            try:
                self.check(force=forced)
            except Exception:
                log.exception("could not check the access rules for changes")

    def check(self, *, force: bool = False) -> bool:
        """Re-read what changed (everything when ``force``); True if the policy was swapped."""
        with self._lock:
            config = self._check_config(force)
            database = self._check_database(force)
            if config is None and database is None:
                if force:
                    log.info("access rules re-read: no change")
                return False
            self._config = self._config if config is None else config
            self._database = self._database if database is None else database
            self._policy = Policy(self._config).merged(self._database)
            log.info(
                "access rules reloaded: %d from %s, %d from the database",
                len(self._config),
                self._path or "the configuration",
                len(self._database),
            )
            return True

    def _check_config(self, force: bool) -> tuple[Rule, ...] | None:
        if self._path is None or self._reread is None:
            return None
        stamp = _stamp(self._path)
        if not force and stamp == self._stamp:
            return None
        # Remembered even when the file is refused: it is reported once, not every second.
        self._stamp = stamp
        refused: ConfigError | None = None
        try:
            rules = tuple(self._reread())
        except ConfigError as exc:
            refused = exc
        if refused is not None:
            log.error(
                "access rules: %s was not reloaded, the rules in force stay: %s",
                self._path,
                refused,
            )
            return None
        return None if rules == self._config else rules

    def _check_database(self, force: bool) -> tuple[Rule, ...] | None:
        if self._store is None:
            return None
        try:
            revision = self._store.revision()
            if not force and revision == self._revision:
                return None
            rows = self._store.list()
        except Exception as exc:  # a database that is down must not stop the watcher
            if not self._unreachable:
                log.warning(
                    "access rules: cannot read the database, the rules in force stay: %s", exc
                )
            self._unreachable = True
            return None
        if self._unreachable:
            log.info("access rules: the database can be read again")
            self._unreachable = False
        self._revision = revision
        refused: ConfigError | None = None
        try:
            rules = tuple(database_rules(rows))
        except ConfigError as exc:
            refused = exc
        else:
            return None if rules == self._database else rules
        log.error(
            "access rules in the database were not reloaded, the rules in force stay: %s "
            "(change them with hatchway access rule del/add)",
            refused,
        )
        return None
