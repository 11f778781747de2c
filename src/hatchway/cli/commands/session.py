"""``hatchway session``: refresh tokens (the logins ``docker login`` keeps), every kind.

A session is what an OAuth2 login with ``access_type=offline`` leaves behind: a refresh
token of a local user, a robot (through one of its tokens) or an htpasswd user. ``list``
shows where and when each was made and last used; ``revoke`` ends one, all of an
account's, or everyone's, at once (the next refresh fails; issued JWTs live out their
few minutes).
"""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.cli.commands._accounts import audit, errors, open_store, status, table, when
from hatchway.cli.common import ConfigOption, DataOption, fail
from hatchway.metadata import Account, RefreshToken
from hatchway.metadata.accounts import LOCAL_BACKEND

app = typer.Typer(
    help="Login sessions (refresh tokens) of every kind of account.", no_args_is_help=True
)

UserOption = Annotated[
    str | None, typer.Option("--user", "-u", help="Only this account's sessions.")
]


def _kind(session: RefreshToken, accounts: dict[str, Account]) -> str:
    if session.backend != LOCAL_BACKEND:
        return session.backend
    account = accounts.get(session.subject)
    kind = "robot" if account is not None and account.robot else "user"
    if session.access_token_id is not None:
        kind += f" (token {session.access_token_id})"
    return kind


@app.command("list")
def list_(
    user: UserOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked and expired.")] = False,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """List sessions: account, kind, client, when and where made, last use, expiry."""
    store = open_store(config, data)
    with errors():
        sessions = store.refresh_tokens.list(user, include_inactive=all_)
        accounts = {a.name: a for a in store.accounts.list()}
    header = ["ID", "USER", "KIND", "CLIENT", "CREATED", "FROM", "LAST USED", "LAST FROM"]
    header += ["EXPIRES"] + (["STATUS"] if all_ else [])
    rows = [
        [
            str(s.id),
            s.subject,
            _kind(s, accounts),
            s.client_id,
            when(s.created_at),
            s.created_addr or "-",
            when(s.last_used_at, "never"),
            s.last_used_addr or "-",
            when(s.expires_at, "never"),
        ]
        + ([status(s)] if all_ else [])
        for s in sessions
    ]
    table(header, rows)


@app.command("revoke")
def revoke(
    session: Annotated[
        int | None, typer.Argument(help="The session's ID (from session list).")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Revoke every session of this account.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Revoke every session of everyone.")] = False,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Revoke one session by ID, all of an account's (--user), or everyone's (--all)."""
    if (session is not None) + (user is not None) + all_ != 1:
        raise fail("give exactly one of: a session ID, --user NAME, --all", 2)
    store = open_store(config, data)
    with errors():
        if session is not None:
            found = store.refresh_tokens.get(session)
            if found is None or not found.active():
                raise fail(f"no live session {session}")
            store.refresh_tokens.revoke(found.id)
            audit(store, "session.revoke", found.subject, session=found.id)
            typer.echo(f"Revoked session {found.id} of {found.subject}.")
        elif user is not None:
            count = store.refresh_tokens.revoke_subject(user)
            audit(store, "session.revoke", user, sessions=count)
            typer.echo(f"Revoked {count} session{'s' if count != 1 else ''} of {user}.")
        else:
            count = store.refresh_tokens.revoke_all()
            audit(store, "session.revoke", None, sessions=count, everyone=True)
            typer.echo(f"Revoked {count} session{'s' if count != 1 else ''}.")
