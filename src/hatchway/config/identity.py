"""``identity:``: where accounts come from besides the local database.

Each source is optional and has its own module; this is the root that names them.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from hatchway.config.identity_federation import FederationEntry, check_entries
from hatchway.config.section import Section


class IdentityConfig(Section):
    federation: list[FederationEntry] = Field(default_factory=list)

    @field_validator("federation")
    @classmethod
    def _federation(cls, value: list[FederationEntry]) -> list[FederationEntry]:
        return check_entries(value)
