"""Request and response bodies of the management API, as pydantic models.

The same models validate requests (unknown fields and wrong types refused: ``extra="forbid"``,
``strict``) and generate the schemas of the OpenAPI document, so the two cannot drift.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hatchway.http.api.repomodels import REPOSITORY_MODELS
from hatchway.http.api.twofactormodels import (
    TWOFACTOR_REQUEST_MODELS,
    TWOFACTOR_RESPONSE_MODELS,
    TwoFactorState,
)

_MAX_TEXT = 1024  # any string field; the real limits (72-byte passwords, names) come after
_Scope = Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorItem(_Response):
    code: str = Field(description="Stable, upper-case error code, e.g. UNAUTHORIZED.")
    message: str = Field(description="A sentence for humans.")
    detail: Any = Field(default=None, description="Optional structured detail.")


class ErrorBody(_Response):
    """Every error of the API, whatever the status."""

    errors: list[ErrorItem] = Field(min_length=1)


class TokenInfo(_Response):
    id: int = Field(description="As `hatchway token list` shows it.")
    name: str
    scopes: list[str]
    created: datetime
    expires: datetime | None = Field(description="null: never expires.")
    last_used: datetime | None
    last_used_address: str | None


class TokenCreated(TokenInfo):
    secret: str = Field(description="The token itself (hw_...): shown in this response only.")


class TokenList(_Response):
    tokens: list[TokenInfo]


class Authentication(_Response):
    method: Literal["password", "token", "session"] = Field(
        description="session: a refresh token, as `hatchway login` keeps (Bearer hwr_...)."
    )
    token: TokenInfo | None = Field(
        default=None, description="The access token used, when method is token."
    )


class Me(_Response):
    name: str
    kind: Literal["user", "robot"]
    admin: bool
    groups: list[str]
    created: datetime | None = Field(description="null for accounts of the htpasswd file.")
    backend: Literal["local", "htpasswd", "ldap", "oidc"]
    authentication: Authentication
    twofactor: TwoFactorState | None = Field(
        default=None, description="Two-factor state; null for accounts outside the store."
    )


class PasswordChange(_Request):
    old_password: str = Field(min_length=1, max_length=_MAX_TEXT)
    new_password: str = Field(
        min_length=1,
        max_length=_MAX_TEXT,
        description="Same rules as `hatchway user passwd`: not empty, at most 72 bytes.",
    )


class TokenCreate(_Request):
    name: str = Field(min_length=1, max_length=64, description="Letter first, then [A-Za-z0-9._-].")
    scopes: Annotated[list[_Scope], Field(min_length=1, max_length=100)] | _Scope = Field(
        description="`type:name:actions` scopes (globs allowed in the name), as a list or "
        "one space-separated string; as `hatchway token create --scope`."
    )
    expires: str | None = Field(
        default="90d",
        max_length=64,
        description="Lifetime such as 30d, 12h, 2w; null or 'never' for no expiry. Signed in "
        "with an access token: a token may not outlive it, so the default is shortened to "
        "its expiry, and an explicit longer lifetime is refused (403).",
    )

    def scope_list(self) -> list[str]:
        return [self.scopes] if isinstance(self.scopes, str) else list(self.scopes)


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    PasswordChange,
    TokenCreate,
    *TWOFACTOR_REQUEST_MODELS,
)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorBody,
    Me,
    TokenList,
    TokenCreated,
    *REPOSITORY_MODELS,
    *TWOFACTOR_RESPONSE_MODELS,
)
