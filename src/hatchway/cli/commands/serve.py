"""``hatchway serve``: run the registry."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from aiohttp import web

from hatchway.auth.credentials.passwords import hash_password
from hatchway.auth.federated import check_federation
from hatchway.auth.tokens.keyfile import write_private
from hatchway.cli.common import ConfigOption, DataOption, fail, load_config, setup_logging
from hatchway.config.model import Config
from hatchway.errors import ConfigError
from hatchway.http.app import create_app
from hatchway.http.identity import check_identity
from hatchway.http.metrics import placement
from hatchway.http.server import serve as run_server
from hatchway.http.wiring import check_policy, key_store
from hatchway.metadata import MetadataStore
from hatchway.metadata.engine import database_dsn
from hatchway.observability import metrics, multiprocess
from hatchway.storage import drivers
from hatchway.storage.driver import StorageError
from hatchway.storage.filesystem import loose_permissions

log = logging.getLogger("hatchway")

ADMIN = "admin"
# Where the first admin password goes when no terminal is watching (journald and
# `docker logs` keep what a service prints, for anyone who may read them).
INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 (a file name)


def _address(config: Config) -> tuple[str, str]:
    host, port = config.http.host_port()
    shown = f"[{host}]" if ":" in host else host
    return ("https" if config.http.tls else "http"), f"{shown}:{port}"


def _admin_notice(config: Config, password: str | None) -> list[str]:
    """Tell the operator the first admin password: on the terminal if stderr is one,
    else only where a 0600 file holding it is."""
    if password is None:
        return []
    if sys.stderr.isatty():
        return [
            f"Created the account '{ADMIN}' with this password (shown once, store it now):",
            f"  {password}",
            "",
        ]
    path = os.path.abspath(os.path.join(config.storage.local_directory(), INITIAL_PASSWORD_FILE))
    try:
        write_private(Path(path), (password + "\n").encode())
    except OSError as exc:
        raise fail(
            f"created the account '{ADMIN}' but cannot write its password to {path}: "
            f"{exc.strerror}; give it one with: hatchway user passwd {ADMIN}"
        ) from None
    return [
        f"Created the account '{ADMIN}'; its password is in {path} (readable by this user",
        "only). Store it, then delete the file.",
        "",
    ]


def _banner(config: Config, workers: int, admin_notice: list[str]) -> str:
    scheme, address = _address(config)
    driver, options = config.storage.driver()
    where = (
        os.path.abspath(options["rootdirectory"])
        if driver == "filesystem"
        else f"s3://{options['bucket']}/{options['rootdirectory'].strip('/')}"
        if driver == "s3"
        else "memory"
    )
    lines = [
        f"hatchway serving the OCI distribution API at {scheme}://{address}/v2/ "
        f"({workers} worker{'s' if workers != 1 else ''}; storage: {driver} {where}; "
        f"auth: {config.auth_mode})",
        "",
    ]
    insecure = "" if config.http.tls else " --tls-verify=false"
    if config.auth_mode == "none":
        copy = "skopeo copy" + ("" if config.http.tls else " --dest-tls-verify=false")
        lines += [
            "WARNING: no auth section is configured: ANYONE who can reach this address can",
            "WARNING: push, pull and delete. Keep it on a trusted network.",
            "",
            "No login is needed. Try:",
            f"  {copy} docker-archive:image.tar docker://{address}/myimage:latest",
        ]
        return "\n".join(lines)
    lines += admin_notice
    lines += [
        "Log in (the password is read from stdin, never from the command line):",
        f"  skopeo login{insecure} -u {ADMIN} --password-stdin {address}",
        f"  docker login -u {ADMIN} --password-stdin {address}",
        "Add accounts with: hatchway user add NAME (same --config/--data as serve)",
    ]
    return "\n".join(lines)


def _bootstrap(config: Config) -> str | None:
    """First start with the built-in token service: make signing keys, and the admin
    account when there is none (password from HATCHWAY_ADMIN_PASSWORD, else generated
    and returned so it is printed once)."""
    check_policy(config)  # every access rule (file and database) compiles, or no start
    check_identity(config)  # identity sources usable (a directory down is a warning)
    check_federation(config)  # identity.federation: token service, robots, JWKS files
    if config.auth_mode != "token" or config.auth is None or config.auth.token is None:
        return None
    if config.auth.token.external:
        return None
    keys = key_store(config)
    keys.signing_key()
    keys.close()  # before the workers fork: no database connection shared with them
    store = MetadataStore(database_dsn(config))
    try:
        if store.accounts.list():
            return None
        given = os.environ.get("HATCHWAY_ADMIN_PASSWORD")
        password = given or secrets.token_urlsafe(18)
        store.accounts.create(ADMIN, password_hash=hash_password(password), admin=True)
        return None if given else password
    finally:
        store.dispose()


def _factory(config_path: Path | None) -> Callable[[Config, int], web.Application]:
    """Workers build their app from the parsed config and know its file, to reload rules."""
    path = config_path.absolute() if config_path is not None else None

    def factory(cfg: Config, worker: int) -> web.Application:
        return create_app(cfg, worker, config_path=path)

    return factory


def serve(
    config: ConfigOption = None,
    addr: Annotated[str | None, typer.Option(help="HOST:PORT to listen on (http.addr).")] = None,
    data: DataOption = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (http.workers); 0 = one per core.")
    ] = None,
) -> None:
    """Serve the registry (OCI distribution API v2) until interrupted."""
    cfg = load_config(config, data, **{"http.addr": addr, "http.workers": workers})
    setup_logging(cfg)
    count = cfg.http.workers or os.cpu_count() or 1
    try:
        # Fail fast in the supervisor on unusable storage rather than in every worker
        # (for S3: a wrong endpoint, bucket or credentials).
        # The bare driver: a measured one would create the metrics before
        # enable_multiprocess() below, and serve would refuse to start.
        asyncio.run(drivers.create(*cfg.storage.driver()).list("/"))
    except (OSError, StorageError) as exc:
        raise fail(f"storage is not usable: {exc}") from None
    driver, options = cfg.storage.driver()
    loose = loose_permissions(options["rootdirectory"]) if driver == "filesystem" else None
    if loose is not None:
        log.warning("%s", loose)
    try:
        admin_notice = _admin_notice(cfg, _bootstrap(cfg))
    except ConfigError as exc:
        raise fail(f"invalid configuration\n{exc}", 2) from None
    except (OSError, ValueError) as exc:
        raise fail(f"cannot set up authentication: {exc}") from None
    try:
        placement(cfg)
    except ConfigError as exc:
        raise fail(f"invalid configuration\n{exc}", 2) from None
    # Every worker records metrics to files there; any worker's /metrics adds them up.
    directory = multiprocess.prepare(cfg)
    metrics.enable_multiprocess(str(directory))
    try:
        typer.echo(_banner(cfg, count, admin_notice), err=True)
        run_server(cfg, _factory(config), count)
    except OSError as exc:
        raise fail(f"cannot listen on {cfg.http.addr}: {exc.strerror}") from None
    finally:
        multiprocess.remove(directory)
