"""Wiring for the ``identity:`` sources beside the local database (LDAP).

:func:`check_identity` runs once at start (``hatchway serve``): what the configuration
names must be usable (the python-ldap module, the bind password and CA files), or the
server does not start; a directory that cannot be reached is only a warning, since it
may come back. :func:`ldap_backend` builds the authenticator for one worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hatchway.config.identity_ldap import LdapConfig
from hatchway.config.model import Config
from hatchway.errors import ConfigError
from hatchway.metadata import Account, MetadataStore
from hatchway.metadata.records import AuditEvent

log = logging.getLogger("hatchway.auth.ldap")

if TYPE_CHECKING:  # python-ldap is an optional extra: imported when configured
    from hatchway.auth.identity.ldap import LdapAuthenticator


def ldap_config(config: Config) -> LdapConfig | None:
    return config.identity.ldap if config.identity is not None else None


def check_identity(config: Config) -> None:
    """Raise ConfigError for what cannot work; warn when the directory is unreachable."""
    from hatchway.http.identity_oidc import check_oidc

    check_oidc(config)  # identity.oidc: its own module
    found = ldap_config(config)
    if found is None:
        return
    if config.auth_mode == "none" or (
        config.auth is not None and config.auth.token is not None and config.auth.token.external
    ):
        log.warning(
            "identity.ldap is ignored: it needs the built-in token service (auth.token) "
            "or auth.htpasswd"
        )
        return
    try:
        import ldap  # noqa: F401
    except ImportError:
        raise ConfigError(
            "identity.ldap: the python-ldap module is missing: pip install 'hatchway[ldap]' "
            "(it builds against libldap: apt-get install libldap2-dev libsasl2-dev)"
        ) from None
    for key, path in (("bindpasswordfile", found.bindpasswordfile), ("cacert", found.cacert)):
        if path is None:
            continue
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"identity.ldap.{key}: cannot read {path}: {exc.strerror}") from None
    from hatchway.auth.identity.ldapclient import Directory

    directory = Directory(found)
    try:
        directory.probe()
    except Exception as exc:
        log.warning("identity.ldap: %s: %s (LDAP logins fail until it answers)", found.url, exc)
    else:
        log.info("identity.ldap: %s answers", found.url)
    finally:
        directory.close(wait=True)  # the server forks its workers next: no threads left


def ldap_backend(
    config: Config,
    store: MetadataStore,
    *,
    reserved: Callable[[str], bool] | None,
    audit: Callable[[AuditEvent], None] | None,
    accounts: Callable[[str], Account | None] | None = None,
) -> LdapAuthenticator | None:
    """The LDAP authenticator for one worker, or None when none is configured."""
    found = ldap_config(config)
    if found is None:
        return None
    from hatchway.auth.identity.ldap import LdapAuthenticator
    from hatchway.auth.identity.ldapclient import Directory

    authenticator = LdapAuthenticator(
        Directory(found), store, reserved=reserved, audit=audit, accounts=accounts
    )

    def probe() -> None:
        # Opens the first service connection now rather than at the first login.
        problem = authenticator.probe()
        if problem is not None:
            log.warning("identity.ldap: %s: %s", found.url, problem)

    threading.Thread(target=probe, name="ldap-probe", daemon=True).start()
    return authenticator
