"""What the ``user``, ``group`` and ``token`` commands share: the store, secrets, audit.

Secrets come from a terminal prompt (asked twice) or one line of stdin, never from argv,
where ``ps`` and shell history would show them. The store is opened per command; SQLite
in WAL mode with a busy timeout lets this run beside a serving registry.
"""

from __future__ import annotations

import getpass
import hmac
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from hatchway.auth.access import ScopeError
from hatchway.cli.commands._table import table, when
from hatchway.cli.common import fail, load_config
from hatchway.metadata import (
    AccessToken,
    AuditEvent,
    MetadataError,
    MetadataStore,
    Outcome,
    RefreshToken,
    database_dsn,
)

PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from stdin (one line) instead of prompting.",
    ),
]


def open_store(config: Path | None, data: Path | None) -> MetadataStore:
    cfg = load_config(config, data)
    try:
        store = MetadataStore(database_dsn(cfg))
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"cannot open the account database: {exc}") from None
    if cfg.redis is not None:
        # Every replica forgets its cached answers when this command revokes.
        from hatchway.shared.revocations import announce

        announce(cfg.redis, store.db)
    return store


@contextmanager
def errors() -> Iterator[None]:
    """Store and input errors -> ``Error: ...`` and exit status 1, not a traceback."""
    try:
        yield
    except (MetadataError, ScopeError, ValueError) as exc:
        raise fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise fail(f"database error: {exc}") from None


def interactive() -> bool:
    return sys.stdin.isatty()


def read_password(password_stdin: bool, prompt: str = "Password") -> str:
    if password_stdin:
        value = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
        if not value:
            raise fail("no password on stdin")
        return value
    if not interactive():
        raise fail("stdin is not a terminal: pipe the password with --password-stdin")
    first = getpass.getpass(f"{prompt}: ")
    if not first:
        raise fail("the password is empty")
    second = getpass.getpass(f"{prompt} (again): ")
    if not hmac.compare_digest(first.encode(), second.encode()):
        raise fail("the passwords do not match")
    return first


def who() -> str:
    """The OS user running the command (audit events name it as ``by``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def audit(store: MetadataStore, event: str, account: str | None, **detail: Any) -> None:
    """Record an administrative change, with the OS user who made it."""
    by = who()
    store.audit.record(
        AuditEvent(
            event=event,
            outcome=Outcome.SUCCESS,
            account=account,
            user_agent="hatchway-cli",
            detail={"by": by, **detail},
        )
    )


def status(record: AccessToken | RefreshToken) -> str:
    """A token's or login session's state, for the STATUS column of ``--all`` listings."""
    if record.revoked_at is not None:
        return "revoked"
    return "active" if record.active() else "expired"


__all__ = [
    "PasswordStdinOption",
    "audit",
    "errors",
    "interactive",
    "open_store",
    "read_password",
    "status",
    "table",
    "when",
    "who",
]
