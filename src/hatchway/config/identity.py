"""``identity:``: where people sign in besides the local database (which stays first).

Each source is its own model in its own module (``identity_ldap``, ...); every one is
optional and checked when the configuration loads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from hatchway.config.identity_ldap import LdapConfig


class IdentityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ldap: LdapConfig | None = None
