"""``hatchway keys``: the token signing keys (certificate bundle, rotation, retiring,
listing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from hatchway.auth.tokens.dbkeys import key_backend
from hatchway.auth.tokens.keys import KeyState, KeyStore, key_directory
from hatchway.cli.commands._accounts import audit, errors, open_store
from hatchway.cli.common import ConfigOption, DataOption, fail, load_config
from hatchway.config.model import parse_duration

app = typer.Typer(
    help="Token signing keys: the certificate bundle for distribution, rotation, listing.",
    no_args_is_help=True,
)

AlgorithmOption = Annotated[
    str | None,
    typer.Option(
        "--algorithm", help="ES256 or RS256 (default: auth.token.signingalgorithm, ES256)."
    ),
]


def _store(config: ConfigOption, data: DataOption) -> KeyStore:
    cfg = load_config(config, data)
    token = cfg.auth.token if cfg.auth is not None else None
    try:
        algorithm = token.signingalgorithm if token else "ES256"
        return KeyStore(key_directory(cfg), algorithm, backend=key_backend(cfg))
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    except SQLAlchemyError as exc:  # keys in a PostgreSQL database that does not answer
        raise fail(f"cannot open the key database: {exc}") from None


@app.command()
def cert(config: ConfigOption = None, data: DataOption = None) -> None:
    """Print the PEM certificates of all live keys (distribution's auth.token.rootcertbundle).

    Creates the first key if there is none yet, so the bundle can be installed before the
    registry first starts.
    """
    try:
        typer.echo(_store(config, data).certificate_bundle(), nl=False)
    except OSError as exc:
        raise fail(f"cannot read or create the signing keys: {exc}") from None


@app.command()
def rotate(
    config: ConfigOption = None,
    data: DataOption = None,
    algorithm: AlgorithmOption = None,
    activate_in: Annotated[
        str,
        typer.Option(
            help="Start signing with the new key after this delay (e.g. 24h), leaving time to "
            "install the new `hatchway keys cert` bundle where verifiers read it only at start."
        ),
    ] = "0s",
) -> None:
    """Make a new signing key; old keys keep verifying until their tokens have expired.

    A running server picks the new key up within seconds. Prints the new key ID.
    """
    try:
        delay = parse_duration(activate_in)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    store = _store(config, data)
    metadata = open_store(config, data)  # before rotating: the rotation must be audited
    try:
        try:
            key = store.rotate(
                activate_at=datetime.now(UTC) + timedelta(seconds=delay), algorithm=algorithm
            )
        except ValueError as exc:
            raise fail(str(exc), 2) from None
        except OSError as exc:
            raise fail(f"cannot write the new signing key: {exc}") from None
        with errors():
            audit(
                metadata,
                "keys.rotate",
                None,
                kid=key.kid,
                algorithm=key.algorithm,
                activates=_time(key.activated),
            )
    finally:
        metadata.dispose()
    typer.echo(key.kid)


@app.command()
def retire(
    kid: Annotated[str, typer.Argument(help="The key's ID (from hatchway keys list).")],
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Stop trusting the key at once: every token it signed is refused within "
            "seconds (for a leaked key).",
        ),
    ] = False,
    config: ConfigOption = None,
    data: DataOption = None,
) -> None:
    """Stop a key signing; with --now also stop it verifying, at once.

    If KID signs now, a new key is made first and signs from now on (printed). Without
    --now, KID keeps verifying the tokens it signed until they expire, as after a
    rotation. A running server picks the change up within seconds.
    """
    store = _store(config, data)
    try:
        successor = store.retire_key(kid, immediately=now)
    except ValueError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot change the signing keys: {exc}") from None
    if successor is not None:
        typer.echo(f"{successor.kid} signs from now on, in place of {kid}.")
    if now:
        typer.echo(
            f"Retired {kid}: tokens it signed are refused from now on. Verifiers that read "
            "the bundle only at start (distribution's rootcertbundle) still trust it: give "
            "them the new `hatchway keys cert` and restart them."
        )
    else:
        typer.echo(
            f"{kid} no longer signs; it verifies the tokens it signed until they expire, "
            "then it is removed (use --now for a leaked key)."
        )


@app.command(name="list")
def list_keys(config: ConfigOption = None, data: DataOption = None) -> None:
    """List the stored keys: kid, algorithm, creation time, state (signing, verifying...)."""
    try:
        keys = _store(config, data).inventory()
    except OSError as exc:
        raise fail(f"cannot read the signing keys: {exc}") from None
    if not keys:
        typer.echo("no signing keys yet (created at first start, or by `hatchway keys cert`)")
        return
    typer.echo(f"{'KID':<44} {'ALG':<6} {'CREATED':<20} STATE")
    for k in keys:
        state = str(k.state)
        if k.state is KeyState.PENDING:
            state += f" (signs from {_time(k.activated)})"
        elif k.rotated_out is not None:
            state += f" (rotated out {_time(k.rotated_out)})"
        created = _time(k.created)
        typer.echo(f"{k.kid:<44} {k.algorithm:<6} {created:<20} {state}")


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
