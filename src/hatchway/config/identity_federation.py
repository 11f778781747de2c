"""``identity.federation``: workload identity, the issuers whose ID tokens hatchway trusts.

One entry per trust relationship: a CI system's or a cluster's OpenID issuer, the
audience its tokens must name, globs every listed claim must match, and the robot account
a matching token acts as. Checked at load: unknown keys, a missing or empty audience, an
issuer or ``jwks`` URL that could not be fetched safely (https, or http on loopback with
``jwksinsecure``), a ``match`` that is not claim -> string. Whether ``account`` is a robot
is checked at start, against the database (:func:`hatchway.auth.federated.check_federation`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ACCOUNT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
MAX_MATCH = 32


def is_url(value: str) -> bool:
    """A JWKS source given as a URL (anything else is a file path)."""
    return "://" in value


class FederationEntry(BaseModel):
    """One trusted issuer (and audience, claims) mapped to one robot account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1, max_length=2048)
    audience: str = Field(min_length=1, max_length=2048)  # required: no default
    # Default: the jwks_uri of <issuer>/.well-known/openid-configuration. Or an https URL,
    # or a file (a cluster's `kubectl get --raw /openid/v1/jwks`, for air-gapped clusters).
    jwks: str | None = None
    # Allow http:// for the discovery and JWKS URLs when they are on a loopback address.
    jwksinsecure: bool = False
    match: dict[str, str] = Field(default_factory=dict)
    account: str
    # A label for the audit trail; default "federation[<index>]".
    name: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        if not _ACCOUNT_RE.fullmatch(value):
            raise ValueError(f"{value[:140]!r} is not an account name")
        return value

    @field_validator("match", mode="before")
    @classmethod
    def _match(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) > MAX_MATCH:
                raise ValueError(f"at most {MAX_MATCH} claims")
            for claim, glob in value.items():
                if not isinstance(claim, str) or not claim:
                    raise ValueError("claim names must be non-empty strings")
                if not isinstance(glob, str):
                    # 'true' and 1 in YAML are not strings: say so rather than coerce.
                    raise ValueError(f"{claim}: the glob must be a string (quote it)")  # noqa: TRY004
        return value

    @model_validator(mode="after")
    def _sources(self) -> FederationEntry:
        from hatchway.config.model import jwks_url_problem  # model imports this module

        if self.jwks is not None and is_url(self.jwks):
            problem = jwks_url_problem(self.jwks, insecure=self.jwksinsecure)
            if problem is not None:
                raise ValueError(f"jwks: {problem}")
        if self.jwks is None:
            problem = jwks_url_problem(self.issuer, insecure=self.jwksinsecure)
            if problem is not None:
                raise ValueError(
                    f"issuer: its keys come from OpenID discovery, so {problem}; "
                    "or give jwks: a URL or a file"
                )
        return self

    @property
    def discovery_url(self) -> str:
        """OpenID Connect Discovery 1.0, section 4: the issuer without a trailing slash."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    def label(self, index: int) -> str:
        return self.name or f"federation[{index}]"


def check_entries(entries: list[FederationEntry]) -> list[FederationEntry]:
    """Entries of one issuer share its keys: they must name the same source for them."""
    sources: dict[str, tuple[str | None, bool]] = {}
    names: set[str] = set()
    for index, entry in enumerate(entries):
        source = (entry.jwks, entry.jwksinsecure)
        if sources.setdefault(entry.issuer, source) != source:
            raise ValueError(
                f"[{index}]: entries for issuer {entry.issuer[:200]!r} must give the same "
                "jwks and jwksinsecure (one key set per issuer)"
            )
        label = entry.label(index)
        if label in names:
            raise ValueError(f"[{index}]: name {label!r} is used twice")
        names.add(label)
    return entries
