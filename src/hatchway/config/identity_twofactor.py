"""``identity.twofactor``: who must have a second factor."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class TwoFactorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # none: optional for everyone; admins: admin accounts must enrol; all: every user
    # account must (robots use tokens and never have one). Until an account that must
    # have 2FA has enrolled, its password is refused except for enrolling.
    required: Literal["none", "admins", "all"] = "none"
