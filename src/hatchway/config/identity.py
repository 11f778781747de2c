"""``identity:``: where accounts come from besides the local database (which stays first).

Each source is its own model in its own module (``identity_ldap``,
``identity_federation``, ...); every one is optional and checked when the configuration
loads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hatchway.config.identity_federation import FederationEntry, check_entries
from hatchway.config.identity_ldap import LdapConfig
from hatchway.config.identity_oidc import OidcConfig
from hatchway.config.identity_twofactor import TwoFactorConfig


class IdentityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ldap: LdapConfig | None = None
    oidc: OidcConfig | None = None
    federation: list[FederationEntry] = Field(default_factory=list)
    twofactor: TwoFactorConfig = Field(default_factory=TwoFactorConfig)

    @field_validator("federation")
    @classmethod
    def _federation(cls, value: list[FederationEntry]) -> list[FederationEntry]:
        return check_entries(value)
