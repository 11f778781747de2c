"""Wiring for ``identity.oidc``: the start-up check and one worker's authenticator.

:func:`check_oidc` runs once at start: the client secret file must be readable (else the
server does not start); a provider that cannot be reached is only a warning, since it may
come back (OIDC sign-ins then show a clear page, and password sign-ins keep working).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hatchway.config.identity_oidc import OidcConfig
from hatchway.config.model import Config
from hatchway.errors import ConfigError
from hatchway.metadata import Account, MetadataStore
from hatchway.metadata.records import AuditEvent

log = logging.getLogger("hatchway.auth.oidc")

if TYPE_CHECKING:  # authlib is imported when configured
    from hatchway.auth.identity.oidc import OidcAuthenticator


def oidc_config(config: Config) -> OidcConfig | None:
    return config.identity.oidc if config.identity is not None else None


def _usable(config: Config) -> bool:
    """OIDC signs people in to the web UI: it needs the built-in token service."""
    token = config.auth.token if config.auth is not None else None
    return config.auth_mode == "token" and token is not None and not token.external


def read_client_secret(found: OidcConfig) -> str:
    try:
        secret = Path(found.clientsecretfile).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(
            f"identity.oidc.clientsecretfile: cannot read {found.clientsecretfile}: {reason}"
        ) from None
    if not secret:
        raise ConfigError(f"identity.oidc.clientsecretfile: {found.clientsecretfile} is empty")
    return secret


def check_oidc(config: Config) -> None:
    """Raise ConfigError for what cannot work; warn when the provider is unreachable."""
    found = oidc_config(config)
    if found is None:
        return
    if not _usable(config):
        log.warning("identity.oidc is ignored: it needs the built-in token service (auth.token)")
        return
    secret = read_client_secret(found)
    from hatchway.auth.identity.oidcclient import Provider, ProviderUnavailable

    try:
        Provider(found, secret, timeout=5.0).probe()
    except ProviderUnavailable as exc:
        log.warning(
            "identity.oidc: %s: %s (OIDC sign-ins fail until it answers)", found.issuer, exc
        )
    else:
        log.info("identity.oidc: %s answers", found.issuer)


def oidc_backend(
    config: Config,
    store: MetadataStore,
    *,
    reserved: Callable[[str], bool] | None,
    audit: Callable[[AuditEvent], None] | None,
    accounts: Callable[[str], Account | None] | None = None,
) -> OidcAuthenticator | None:
    """The OIDC authenticator for one worker, or None when none is configured."""
    found = oidc_config(config)
    if found is None or not _usable(config):
        return None
    from hatchway.auth.identity.oidc import OidcAuthenticator
    from hatchway.auth.identity.oidcclient import Provider

    secret = read_client_secret(found)
    authenticator = OidcAuthenticator(
        Provider(found, secret), secret, store, reserved=reserved, audit=audit, accounts=accounts
    )

    def probe() -> None:  # fetch the discovery document before the first sign-in
        problem = authenticator.probe()
        if problem is not None:
            log.warning("identity.oidc: %s: %s", found.issuer, problem)

    threading.Thread(target=probe, name="oidc-probe", daemon=True).start()
    return authenticator
