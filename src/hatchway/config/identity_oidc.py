"""``identity.oidc``: single sign-on for the web UI with an OpenID Connect provider.

Checked when the configuration loads: the issuer is an https URL (plain http only to a
loopback address, for tests and a provider on the same machine), ``scopes`` holds
``openid``, the claim names are not empty. The client secret is read from
``clientsecretfile`` when the server starts, never kept in the configuration. Whether the
provider answers is checked at start too, but only as a warning: it may come back.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_MAX_ITEMS = 64


def _word_list(value: Any) -> Any:
    """From the environment: a YAML/JSON list, or words separated by commas or spaces."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import yaml

            return yaml.safe_load(text)
        return [part for part in text.replace(",", " ").split() if part]
    return value


WordList = Annotated[list[str], BeforeValidator(_word_list)]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def issuer_problem(url: str) -> str | None:
    """Why hatchway may not trust keys and tokens from this issuer URL, or None."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        return f"expected https://HOST[/PATH] (no credentials, query or fragment), got {url!r}"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(parts.hostname):
        return None  # a provider on this machine (tests): nobody on a path can swap keys
    return "expected an https:// URL (plain http only to a loopback address)"


class OidcConfig(BaseModel):
    """The OpenID provider people sign in with, and how its claims map to accounts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1, max_length=2048)
    clientid: str = Field(min_length=1, max_length=512)
    clientsecretfile: str = Field(min_length=1)
    scopes: WordList = Field(default_factory=lambda: ["openid", "profile", "email"])
    usernameclaim: str = Field(default="preferred_username", min_length=1, max_length=128)
    groupsclaim: str | None = Field(default="groups", min_length=1, max_length=128)
    admingroups: WordList = Field(default_factory=list)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        problem = issuer_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        if len(value) > _MAX_ITEMS:
            raise ValueError(f"at most {_MAX_ITEMS} scopes")
        for scope in value:
            if not scope or any(c.isspace() or c in {'"', "\\"} for c in scope):
                raise ValueError(f"{scope!r} is not a scope (RFC 6749: no spaces or quotes)")
        if "openid" not in value:
            raise ValueError("must include openid (OpenID Connect asks for it)")
        return list(dict.fromkeys(value))  # once each, in the given order

    @field_validator("admingroups")
    @classmethod
    def _admingroups(cls, value: list[str]) -> list[str]:
        if len(value) > _MAX_ITEMS:
            raise ValueError(f"at most {_MAX_ITEMS} groups")
        if any(not group for group in value):
            raise ValueError("group names must not be empty")
        return value

    @property
    def discovery_url(self) -> str:
        """OpenID Connect Discovery 1.0, section 4: the issuer without a trailing slash."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def display_name(self) -> str:
        """What the sign-in button names: the issuer's host."""
        return urllib.parse.urlsplit(self.issuer).hostname or self.issuer
