"""The base of every configuration section (its own module so that section modules such as
``identity`` can be imported by ``model`` without a cycle)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
