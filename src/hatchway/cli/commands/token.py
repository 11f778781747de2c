"""``hatchway token``: personal access tokens and robot tokens.

With ``--registry HOST`` the same commands go through HOST's management API with the
credentials ``hatchway login`` stored (``_tokenremote``); the local database's modules are
imported only without it, so that path starts like the other client commands.

A token is the password of ``docker login`` for its account, limited to its scopes
(globs allowed in the name: ``repository:alice/*:pull,push``). ``create`` prints the
secret once, alone on the last line, so scripts can take it with ``tail -n1``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hatchway.cli.commands._table import table, when
from hatchway.cli.common import ConfigOption, DataOption, fail

app = typer.Typer(help="Manage personal access tokens and robot tokens.", no_args_is_help=True)

UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        help="The account the token is for (with --registry: admin endpoints; default: you).",
    ),
]
RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Use this registry's management API with the credentials `hatchway login` "
        "stored for it, instead of the local database.",
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option("--insecure", help="With --registry: allow plain HTTP, skip TLS checks."),
]


def _local_user(user: str | None) -> str:
    if user is None:
        raise fail("--user is required (without --registry)", 2)
    return user


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", "-n", help="A name to tell tokens apart.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            "-s",
            help="type:name:actions, repeatable; globs in the name, e.g. "
            "'repository:alice/*:pull,push' or 'registry:catalog:*'.",
        ),
    ],
    expires: Annotated[
        str | None,
        typer.Option("--expires", "-e", help="Lifetime (30d, 12h, 2w) or 'never'.  [default: 90d]"),
    ] = None,
    user: UserOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    registry: RegistryOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Create a token; its secret is printed once, on the last line."""
    if registry is not None:
        from hatchway.cli.commands import _tokenremote

        _tokenremote.create(registry, insecure, user, name, scope, expires)
        return
    from hatchway.auth.credentials.pat import create_token, parse_expiry
    from hatchway.cli.commands._accounts import audit, errors, open_store

    user = _local_user(user)
    try:
        lifetime = parse_expiry(expires or "90d")
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    store = open_store(config, data)
    with errors():
        record, secret = create_token(store, user, name=name, scopes=scope, lifetime=lifetime)
        audit(
            store,
            "token.create",
            user,
            token_id=record.id,
            token_name=record.name,
            scopes=list(record.scopes),
            expires=when(record.expires_at, "never"),
        )
    typer.echo(
        f"Created token {record.id} ({record.name}) for {user}: {' '.join(record.scopes)}; "
        f"expires {when(record.expires_at, 'never')}."
    )
    typer.echo("Use it as the password of docker login. It is shown only now:")
    typer.echo(secret)


@app.command("list")
def list_(
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Only this account's tokens.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked and expired.")] = False,
    config: ConfigOption = None,
    data: DataOption = None,
    registry: RegistryOption = None,
    insecure: InsecureOption = False,
) -> None:
    """List tokens: id, name, account, scopes, expiry and last use."""
    if registry is not None:
        from hatchway.cli.commands import _tokenremote

        _tokenremote.list_(registry, insecure, user, all_)
        return
    from hatchway.cli.commands._accounts import errors, open_store, status

    store = open_store(config, data)
    with errors():
        if user is not None:
            store.accounts.require(user)
        found = store.tokens.list(user, include_inactive=all_)
    header = ["ID", "NAME", "USER", "SCOPES", "EXPIRES", "LAST USED", "FROM"]
    rows = [
        [
            str(t.id),
            t.name,
            t.account,
            " ".join(t.scopes),
            when(t.expires_at, "never"),
            when(t.last_used_at, "never"),
            t.last_used_addr or "-",
        ]
        + ([status(t)] if all_ else [])
        for t in found
    ]
    table(header + (["STATUS"] if all_ else []), rows)


@app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="Token id or name.")],
    user: UserOption = None,
    config: ConfigOption = None,
    data: DataOption = None,
    registry: RegistryOption = None,
    insecure: InsecureOption = False,
) -> None:
    """Revoke a token at once (and every refresh token obtained with it)."""
    if registry is not None:
        from hatchway.cli.commands import _tokenremote

        _tokenremote.revoke(registry, insecure, user, token)
        return
    from hatchway.cli.commands._accounts import audit, errors, open_store

    user = _local_user(user)
    store = open_store(config, data)
    with errors():
        record = store.tokens.revoke(user, token)
        audit(store, "token.revoke", user, token_id=record.id, token_name=record.name)
    typer.echo(f"Revoked token {record.id} ({record.name}) of {user}.")
