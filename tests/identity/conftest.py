"""Fixtures: a real slapd per module (tests that change or stop it make their own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hatchway.config.identity_ldap import LdapConfig
from tests.support.slapd import (
    HAVE_SLAPD,
    SERVICE_DN,
    SUFFIX,
    USERFILTER,
    Slapd,
    service_password_file,
    start_slapd,
)

if not HAVE_SLAPD:  # scripts/test installs slapd and ldap-utils: never skipped in CI
    raise RuntimeError(
        "the LDAP tests need slapd and ldap-utils (apt-get install slapd ldap-utils)"
    )


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = start_slapd(tmp_path_factory.mktemp("slapd") / "ldap")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A directory this test may change or kill."""
    server = start_slapd(tmp_path / "ldap")
    try:
        yield server
    finally:
        server.stop()


def ldap_settings(server: Slapd, **extra: Any) -> dict[str, Any]:
    """The ``identity.ldap`` section for ``server`` (groups by search, as in the README)."""
    settings: dict[str, Any] = {
        "url": server.url,
        "binddn": SERVICE_DN,
        "bindpasswordfile": str(service_password_file(server.directory)),
        "userbase": f"ou=people,{SUFFIX}",
        "userfilter": USERFILTER,
        "groupbase": SUFFIX,
        "groupfilter": "(&(objectClass=groupOfNames)(member={dn}))",
        "timeout": 3,
    }
    settings.update(extra)
    return {k: v for k, v in settings.items() if v is not None}


def ldap_config(server: Slapd, **extra: Any) -> LdapConfig:
    return LdapConfig.model_validate(ldap_settings(server, **extra))
