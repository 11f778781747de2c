"""What the registry client commands (push, pull, tags, inspect, delete) share: connection
options, credentials, progress display and turning client errors into one-line messages.

Credentials: ``--username`` with ``--password-stdin`` (never argv, where ``ps`` shows it),
else what ``hatchway login`` stored for the registry, else anonymous.

The client (httpx) is imported when a command runs, not when it is registered or asked for
``--help``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from hatchway.client.reference import InvalidReference, Reference, parse_reference

if TYPE_CHECKING:
    import httpx

    from hatchway.client.progress import Reporter

InsecureOption = Annotated[
    bool,
    typer.Option("--insecure", help="Allow plain HTTP, and HTTPS without certificate checks."),
]
UsernameOption = Annotated[
    str | None,
    typer.Option("--username", "-u", help="Log in as this user (else stored credentials)."),
]
PasswordStdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
]
JobsOption = Annotated[
    int, typer.Option("--jobs", "-j", min=1, max=32, help="Blobs transferred at once.")
]
PlatformOption = Annotated[
    str | None,
    typer.Option(help="os/arch\\[/variant]: take this image of an index instead of all."),
]
LimitRateOption = Annotated[
    str | None,
    typer.Option("--limit-rate", help="Cap the transfer speed, bytes per second (e.g. 50M)."),
]
RetriesOption = Annotated[
    int, typer.Option(min=1, help="Attempts per request before a transient failure is fatal.")
]

_SIZE_RE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)


def size(text: str, option: str) -> int:
    """``16M``, ``512k``, ``1G`` or bytes (binary multiples)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise _fail(f"{option}: {text!r} is not a size like 16M", 2)
    power: int = 1024 ** " kmg".index(match.group(2).lower() or " ")
    return int(match.group(1)) * power


def reference(text: str, *, bare: bool = False) -> Reference:
    try:
        return parse_reference(text, allow_bare=bare)
    except InvalidReference as exc:
        raise _fail(str(exc), 2) from None


def auth(registry: str, username: str | None, password_stdin: bool) -> httpx.Auth:
    from hatchway.client.transfer import client_auth_for

    if password_stdin and username is None:
        raise _fail("--password-stdin needs --username", 2)
    password = None
    if username is not None:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, err=True)
    return client_auth_for(registry, username, password)


def usage(message: str) -> typer.Exit:
    return _fail(message, 2)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def reporting() -> Iterator[Reporter]:
    """Bars on a terminal, plain lines otherwise; both on stderr (stdout carries results);
    client errors end the command with one line."""
    from hatchway.client.progress import LineReporter, RichReporter

    with ExitStack() as stack, client_errors():
        if sys.stderr.isatty():
            yield stack.enter_context(RichReporter())
        else:
            yield LineReporter(sys.stderr)


@contextmanager
def client_errors() -> Iterator[None]:
    from hatchway.client.auth import RegistryAuthError
    from hatchway.client.blobs import DigestMismatch
    from hatchway.client.manifest import ManifestError
    from hatchway.client.registry import RegistryClientError
    from hatchway.client.session import RegistryError, TransferError

    try:
        yield
    except (
        TransferError,
        ManifestError,
        DigestMismatch,
        RegistryAuthError,
        RegistryClientError,
        OSError,
    ) as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, RegistryError) and exc.status == 401:
            message += " (log in with `hatchway login`, or pass --username)"
        raise _fail(message) from None
    except KeyboardInterrupt:
        raise _fail("interrupted", 130) from None
