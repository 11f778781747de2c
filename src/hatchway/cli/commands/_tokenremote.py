"""``hatchway token create|list|revoke --registry HOST``: the same commands, through the
server's management API with the credentials ``hatchway login`` stored for HOST.

Without ``--user`` (or with one's own name) they act on the signed-in account
(``/api/v1/me/tokens``; ``list --all`` excepted); with another name, on that account through
the admin endpoints (``/api/v1/tokens``, and robots' tokens through
``/api/v1/robots/NAME/tokens``), which only an admin may use. Output as the local
commands: ``create`` prints the secret once, alone on the last line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import typer

from hatchway.cli.commands._table import table, when
from hatchway.client.mgmt import ApiCallError, ManagementClient


def _fail(message: str) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(1)


def _time(value: str | None, empty: str = "-") -> str:
    return when(datetime.fromisoformat(value) if value else None, empty)


def _status(token: dict[str, Any]) -> str:
    if token.get("revoked"):
        return "revoked"
    return "active" if token.get("active", True) else "expired"


def _client(registry: str, insecure: bool) -> ManagementClient:
    try:
        return ManagementClient(registry, insecure=insecure)
    except ApiCallError as exc:
        raise _fail(str(exc)) from None


def _me(api: ManagementClient) -> str:
    return str(api.call("GET", "/me")["name"])


def _tokens(api: ManagementClient, user: str | None, include_all: bool) -> list[dict[str, Any]]:
    if user is None:
        return list(api.call("GET", "/me/tokens")["tokens"])
    query = urlencode({"account": user, **({"all": "true"} if include_all else {})})
    return list(api.call("GET", f"/tokens?{query}")["tokens"])


def create(
    registry: str,
    insecure: bool,
    user: str | None,
    name: str,
    scopes: list[str],
    expires: str | None,
) -> None:
    body: dict[str, Any] = {"name": name, "scopes": scopes}
    if expires is not None:
        body["expires"] = expires
    with _client(registry, insecure) as api:
        try:
            owner = _me(api)
            if user in (None, owner):
                record = api.call("POST", "/me/tokens", body)
            else:
                owner = str(user)
                record = api.call("POST", f"/robots/{quote(owner, safe='')}/tokens", body)
        except ApiCallError as exc:
            raise _fail(str(exc)) from None
    typer.echo(
        f"Created token {record['id']} ({record['name']}) for {owner}: "
        f"{' '.join(record['scopes'])}; expires {_time(record['expires'], 'never')}."
    )
    typer.echo("Use it as the password of docker login. It is shown only now:")
    typer.echo(record["secret"])


def list_(registry: str, insecure: bool, user: str | None, include_all: bool) -> None:
    if include_all and user is None:
        raise _fail("--all with --registry needs --user (admin endpoints)")
    with _client(registry, insecure) as api:
        try:
            owner = user or _me(api)
            found = _tokens(api, user, include_all)
        except ApiCallError as exc:
            raise _fail(str(exc)) from None
    header = ["ID", "NAME", "USER", "SCOPES", "EXPIRES", "LAST USED", "FROM"]
    rows = [
        [
            str(t["id"]),
            t["name"],
            t.get("account", owner),
            " ".join(t["scopes"]),
            _time(t["expires"], "never"),
            _time(t["last_used"], "never"),
            t["last_used_address"] or "-",
        ]
        + ([_status(t)] if include_all else [])
        for t in found
    ]
    table(header + (["STATUS"] if include_all else []), rows)


def _find(tokens: list[dict[str, Any]], owner: str, ref: str) -> dict[str, Any]:
    for token in tokens:
        if ref in (str(token["id"]), token["name"]):
            return token
    raise ApiCallError(f"{owner!r} has no token {ref[:100]!r}")


def revoke(registry: str, insecure: bool, user: str | None, ref: str) -> None:
    with _client(registry, insecure) as api:
        try:
            me = _me(api)
            user = None if user == me else user
            owner = user or me
            token = _find(_tokens(api, user, False), owner, ref)
            if user is None:
                api.call("DELETE", f"/me/tokens/{quote(token['name'], safe='')}")
            else:
                account = quote(user, safe="")
                api.call("DELETE", f"/tokens/{account}/{token['id']}")
        except ApiCallError as exc:
            raise _fail(str(exc)) from None
    typer.echo(f"Revoked token {token['id']} ({token['name']}) of {owner}.")
