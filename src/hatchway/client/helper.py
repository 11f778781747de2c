"""``docker-credential-hatchway``: a Docker credential helper, so that docker, skopeo and
podman keep registry logins in hatchway's encrypted store (``credsStore``/``credHelpers``).

The protocol is docker/docker-credential-helpers' ``credentials.Serve``, to the byte::

    store    stdin {"ServerURL","Username","Secret"}      stdout nothing
    get      stdin server URL                             stdout {"ServerURL","Username","Secret"}
    erase    stdin server URL                             stdout nothing
    list     stdin ignored                                stdout {"<server URL>": "<username>"}
    version  prints "docker-credential-hatchway (hatchway) <version>"

Any failure prints one line on stdout and exits 1; a missing entry prints exactly
``credentials not found in native keychain``, which clients test for. A username of
``<token>`` is docker's convention for "the secret is an identity (refresh) token"; it is
stored and returned as it is. ``HATCHWAY_CREDENTIALS_*`` variables choose the store (see
:mod:`hatchway.client.secretstore`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO

from hatchway import __version__
from hatchway.client import helperwire
from hatchway.client.secretstore import Entry, SecretStore, Settings, StoreError, open_store

NAME = "docker-credential-hatchway"
PACKAGE = "hatchway"
TOKEN_USERNAME = "<token>"  # noqa: S105 (docker's marker, not a secret)
MISSING_SERVER_URL = "no credentials server URL"
MISSING_USERNAME = "no credentials username"
ACTIONS = ("store", "get", "erase", "list", "version")


class HelperError(Exception):
    """A failure reported to the client as one line on stdout, exit status 1."""


def usage() -> str:
    return f"Usage: {NAME} <{'|'.join(ACTIONS)}>"


def version_line() -> str:
    return f"{NAME} ({PACKAGE}) {__version__}\n"


def _store() -> SecretStore:
    return open_store(Settings.from_env())


def store(stdin: bytes) -> bytes:
    creds = helperwire.parse_credentials(stdin)
    if not creds.server_url:
        raise HelperError(MISSING_SERVER_URL)
    if not creds.username:
        raise HelperError(MISSING_USERNAME)
    _store().add(creds.server_url, Entry(creds.username, creds.secret))
    return b""


def get(stdin: bytes) -> bytes:
    server_url = helperwire.server_url(stdin)
    if not server_url:
        raise HelperError(MISSING_SERVER_URL)
    entry = _store().get(server_url)
    return helperwire.encode_credentials(
        helperwire.Credentials(server_url, entry.username, entry.secret)
    )


def erase(stdin: bytes) -> bytes:
    server_url = helperwire.server_url(stdin)
    if not server_url:
        raise HelperError(MISSING_SERVER_URL)
    _store().delete(server_url)
    return b""


def list_(_stdin: bytes) -> bytes:
    return helperwire.encode_list(_store().list())


def version(_stdin: bytes) -> bytes:
    return version_line().encode()


HANDLERS = {"store": store, "get": get, "erase": erase, "list": list_, "version": version}
NEEDS_STDIN = ("store", "get", "erase")


def handle(action: str, stdin: BinaryIO) -> bytes:
    """Run one action; raises :class:`HelperError`, :class:`StoreError` or
    :class:`helperwire.WireError` with the line to print."""
    handler = HANDLERS.get(action)
    if handler is None:
        raise HelperError(f"{NAME}: unknown action: {action}")
    return handler(stdin.read() if action in NEEDS_STDIN else b"")


def run(argv: Sequence[str], stdin: BinaryIO, stdout: BinaryIO) -> int:
    """The whole program, minus ``sys``: returns the exit status."""
    if len(argv) != 1:
        stdout.write(usage().encode() + b"\n")
        return 1
    if argv[0] in ("--version", "-v"):
        stdout.write(version_line().encode())
        return 0
    if argv[0] in ("--help", "-h"):
        stdout.write(usage().encode() + b"\n")
        return 0
    try:
        out = handle(argv[0], stdin)
    except (HelperError, StoreError, helperwire.WireError) as exc:
        stdout.write(_one_line(str(exc)).encode("utf-8", errors="replace") + b"\n")
        return 1
    except Exception as exc:  # anything else still answers with one line, never a traceback
        stdout.write(_one_line(f"{type(exc).__name__}: {exc}").encode("utf-8", "replace") + b"\n")
        return 1
    stdout.write(out)
    return 0


def _one_line(message: str) -> str:
    return message.replace("\r", " ").replace("\n", " ").strip() or "error"


def main() -> None:
    """Console-script entry point."""
    status = run(sys.argv[1:], sys.stdin.buffer, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    sys.exit(status)
