"""Fixtures for identity.oidc: a real OpenID provider (``oidc-provider`` 8 under node, by
``tests/support/oidc_provider.py``) and a real ``hatchway serve`` that trusts it, both on
127.0.0.1; Playwright drives Debian's Chromium through the sign-in (as tests/browser)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from hatchway.metadata import MetadataStore
from hatchway.metadata.records import AuditRecord
from tests.browser.conftest import browser, new_context, playwright
from tests.support.authkit import ADMIN_PASSWORD, token_config
from tests.support.oidc_provider import (
    OidcProvider,
    client_secret_file,
    have_provider,
    start_oidc_provider,
)
from tests.support.server import Server, free_port, start_server

__all__ = ["browser", "playwright"]

CALLBACK = "/ui/sign-in/oidc/callback"

if not have_provider():  # scripts/test installs both: never skipped in CI
    raise RuntimeError(
        "the OIDC tests need node and oidc-provider (./scripts/test runs npm ci in "
        "tests/support/oidcprovider)"
    )


def oidc_server_config(settings: dict[str, Any], access: list[dict[str, Any]] | None = None) -> str:
    doc = json.loads(token_config(access))
    doc["identity"] = {"oidc": settings}
    return json.dumps(doc)


@dataclass
class Sso:
    """A provider and a hatchway server that trusts it."""

    provider: OidcProvider
    server: Server


def start_sso(
    tmp: Path,
    access: list[dict[str, Any]] | None = None,
    *,
    refresh_tokens: bool = True,
    **extra: Any,
) -> Sso:
    """hatchway first (the provider is down at its start: a warning), then the provider,
    registered with the server's callback URL."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    settings = {
        "issuer": issuer,
        "clientid": "hatchway",
        "clientsecretfile": str(client_secret_file(tmp)),
        "scopes": ["openid", "profile", "email", "groups"],
        "usernameclaim": "preferred_username",
        "groupsclaim": "groups",
        "admingroups": ["registry-admins"],
        **extra,
    }
    server = start_server(
        tmp,
        config=oidc_server_config(settings, access),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        provider = start_oidc_provider(
            tmp / "op", port, redirect_uris=[server.url + CALLBACK], refresh_tokens=refresh_tokens
        )
    except BaseException:
        server.stop()
        raise
    return Sso(provider, server)


ACCESS: list[dict[str, Any]] = [
    {"group": "devs", "repository": "team/*", "action": ["pull", "push"]},
    {"repository": "${account}/*", "action": "*"},
]


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    found = start_sso(tmp_path_factory.mktemp("sso"), ACCESS)
    try:
        yield found
    finally:
        found.server.stop()
        found.provider.stop()


@pytest.fixture
def context(browser: Browser, sso: Sso) -> Iterator[BrowserContext]:
    made = new_context(browser, sso.server)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    opened = context.new_page()
    opened.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message!r}"))
    return opened


def provider_sign_in(page: Page, login: str, *, consent: bool = True) -> None:
    """From hatchway's sign-in page: the SSO link, the provider's login form (any
    password), its consent page."""
    page.goto("/ui/sign-in")
    page.get_by_role("link", name="Sign in with 127.0.0.1").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any-password")
    page.get_by_role("button", name="Sign-in").click()
    if consent:
        page.get_by_role("button", name="Continue").click()


def store_of(server: Server) -> MetadataStore:
    return MetadataStore(f"sqlite:///{server.data}/hatchway.db")


def audit_until(
    server: Server, account: str, event: str, done: Callable[[list[AuditRecord]], bool]
) -> list[AuditRecord]:
    """The account's audit events of a kind, once ``done`` holds (the trail is written
    in the background), or as they are after 10 s."""
    store = store_of(server)
    try:
        deadline = time.monotonic() + 10
        while True:
            found = store.audit.list(account=account, event=event)
            if done(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)
    finally:
        store.dispose()
