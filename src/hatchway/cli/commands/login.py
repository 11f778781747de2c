"""``hatchway login``: verify credentials with a registry and store them as docker does.

The password comes from ``--password-stdin``, a terminal prompt (never echoed), or
``HATCHWAY_PASSWORD`` for CI; ``-p`` works but lands in shell history and ``ps``, so it
warns like docker. ``--sso`` needs no password: it prints a page and a code to approve in
the browser (device login, ``client/device.py``). Messages match docker's, so scripts
written for one read the other.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from hatchway.cli.common import fail
from hatchway.client.dockerconfig import Credentials, normalize_server

if TYPE_CHECKING:
    from hatchway.client.device import DeviceStart
    from hatchway.client.login import LoginResult

NON_TTY = "Cannot perform an interactive login from a non TTY device"
PASSWORD_ARGV_WARNING = "WARNING! Using --password via the CLI is insecure. Use --password-stdin."  # noqa: S105
UNENCRYPTED_WARNING = """
WARNING! Your credentials are stored unencrypted in '{path}'.
Configure a credential helper to remove this warning. See
https://docs.docker.com/go/credential-store/
hatchway ships one: put "credsStore": "hatchway" in that file to use docker-credential-hatchway.
"""

ServerArg = Annotated[
    str | None,
    typer.Argument(help="Registry host[:port]; default Docker Hub.", show_default=False),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure", help="Allow plain HTTP and unverified TLS (loopback needs neither)."
    ),
]


def _read_stdin_secret() -> str:
    # docker trims one trailing newline (and a CR before it); the rest is the secret.
    return sys.stdin.read().removesuffix("\n").removesuffix("\r")


def _credentials(username: str | None, password: str | None, password_stdin: bool) -> Credentials:
    if password is not None and password_stdin:
        raise fail("--password and --password-stdin are mutually exclusive")
    if password is not None:
        typer.echo(PASSWORD_ARGV_WARNING, err=True)
    username = username or os.environ.get("HATCHWAY_USERNAME") or None
    if password_stdin:
        if not username:
            raise fail("Must provide --username with --password-stdin")
        password = _read_stdin_secret()
    password = password or os.environ.get("HATCHWAY_PASSWORD") or None
    tty = sys.stdin.isatty()
    if not username:
        if not tty:
            raise fail(NON_TTY)
        username = input("Username: ").strip()
    if not password:
        if not tty:
            raise fail(NON_TTY)
        password = getpass.getpass("Password: ")
    if not username:
        raise fail("Username is required")
    if not password:
        raise fail("Password is required")
    return Credentials(username, password)


def _show(started: DeviceStart) -> None:
    """Where to go and what to check, on stderr (stdout stays "Login Succeeded")."""
    minutes = max(1, round(started.expires_in / 60))
    if started.verification_uri_complete:
        check = (
            f"Check that it shows the code {started.user_code} (or open "
            f"{started.verification_uri} and enter it)."
        )
        page = started.verification_uri_complete
    else:
        check = f"Enter the code {started.user_code} there."
        page = started.verification_uri
    typer.echo(
        f"To sign in, open this page in a browser and approve the request:\n\n    {page}\n\n"
        f"{check}\nWaiting for approval (the code expires in {minutes} minute"
        f"{'s' if minutes != 1 else ''})...",
        err=True,
    )


def _sso(target: str, insecure: bool) -> LoginResult:
    from hatchway.client.device import login_sso

    return login_sso(target, _show, insecure=insecure)


def login(
    server: ServerArg = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Username (or HATCHWAY_USERNAME).")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            "-p",
            help="Password; lands in shell history, prefer --password-stdin.",
            show_default=False,
        ),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    insecure: InsecureOption = False,
    sso: Annotated[
        bool,
        typer.Option(
            "--sso",
            help="Sign in with the browser (device login): prints a page and a code to approve.",
        ),
    ] = False,
) -> None:
    """Log in to a registry; credentials go where docker would put them."""
    from hatchway.client.credstore import CredentialStoreError
    from hatchway.client.dockerconfig import DockerConfigError
    from hatchway.client.login import LoginError
    from hatchway.client.login import login as do_login

    target = server or normalize_server(None)
    try:
        if sso:
            if username or password is not None or password_stdin:
                raise fail("--sso signs in through the browser: drop --username/--password")
            result = _sso(target, insecure)
        else:
            credentials = _credentials(username, password, password_stdin)
            result = do_login(target, credentials, insecure=insecure)
    except (LoginError, DockerConfigError) as exc:
        raise fail(str(exc)) from None
    except CredentialStoreError as exc:
        raise fail(f"saving credentials: {exc}") from None
    if result.plaintext:
        typer.echo(UNENCRYPTED_WARNING.format(path=result.stored_in), err=True)
    typer.echo("Login Succeeded")
