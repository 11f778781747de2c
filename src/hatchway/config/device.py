"""``auth.token.device``: the OAuth2 device authorization grant (``hatchway login --sso``).

On by default with the built-in token service: a device code only becomes a token once a
person signed in to the web UI approves it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _duration(value: Any) -> float:
    from hatchway.config.model import parse_duration  # model.py imports this module

    return parse_duration(value)


class DeviceGrant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # How long a code waits for approval (RFC 8628 ``expires_in``): 10 minutes.
    expiration: Annotated[float, BeforeValidator(_duration), Field(ge=1, le=86400)] = 600.0
    # The least time between two polls (``interval``), in seconds.
    interval: int = Field(default=5, ge=1, le=60)
