"""Bodies and query parameters of the admin endpoints (same conventions as :mod:`.models`:
requests refuse unknown fields and wrong types; the OpenAPI document comes from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hatchway.http.api.models import TokenInfo, _Request, _Response, _Scope

_Name = Annotated[str, Field(min_length=1, max_length=255)]
_Password = Annotated[str, Field(min_length=1, max_length=1024)]


class _Query(BaseModel):
    """Query strings: unknown parameters refused; numbers and booleans read from text."""

    model_config = ConfigDict(extra="forbid")


class AccountInfo(_Response):
    name: str
    kind: Literal["user", "robot"]
    admin: bool
    disabled: bool
    groups: list[str]
    created: datetime
    password_changed: datetime | None = Field(description="null for robots.")
    disabled_since: datetime | None


class AccountList(_Response):
    accounts: list[AccountInfo]
    next: str | None = Field(
        default=None, description="The next page's URL (as in the Link header), or null."
    )


class AccountQuery(_Query):
    n: int = Field(default=1000, ge=1, le=1000, description="Accounts per page.")
    last: str | None = Field(
        default=None, max_length=255, description="The last name of the previous page."
    )


class AccountCreate(_Request):
    name: _Name = Field(description="Letter or digit first, then [A-Za-z0-9._@+-].")
    password: _Password | None = Field(
        default=None, description="Omit to have one generated (returned once, in the answer)."
    )
    admin: bool = False


class AccountCreated(AccountInfo):
    password: str | None = Field(description="The generated password (only now), else null.")


class AccountUpdate(_Request):
    admin: bool | None = Field(default=None, description="Set or remove the admin flag.")
    disabled: bool | None = Field(
        default=None,
        description="Disable: its password, tokens and sessions stop working (issued "
        "registry tokens within seconds). Enable: its password and tokens work again.",
    )


class PasswordReset(_Request):
    password: _Password | None = Field(
        default=None, description="Omit to have one generated (returned once)."
    )


class PasswordSet(_Response):
    password: str | None = Field(description="The generated password (only now), else null.")


class RobotCreate(_Request):
    name: _Name


class GroupInfo(_Response):
    name: str
    members: list[str]
    created: datetime


class GroupList(_Response):
    groups: list[GroupInfo]


class GroupCreate(_Request):
    name: _Name = Field(description="Letter or digit first, then [A-Za-z0-9._-].")


class AccountToken(TokenInfo):
    account: str
    revoked: datetime | None
    active: bool


class AccountTokenList(_Response):
    tokens: list[AccountToken]


class RobotTokenCreate(_Request):
    name: str = Field(min_length=1, max_length=64, description="Letter first, then [A-Za-z0-9._-].")
    scopes: Annotated[list[_Scope], Field(min_length=1, max_length=100)] | _Scope
    expires: str | None = Field(default="90d", max_length=64)

    def scope_list(self) -> list[str]:
        return [self.scopes] if isinstance(self.scopes, str) else list(self.scopes)


class RobotTokenCreated(AccountToken):
    secret: str = Field(description="The token itself (hw_...): shown in this response only.")


class TokenQuery(_Query):
    account: str | None = Field(default=None, max_length=255, description="Only its tokens.")
    all: bool = Field(default=False, description="Include revoked and expired tokens.")


class RuleInfo(_Response):
    id: str = Field(description="Database rules: their id. config-N, default-N: read-only.")
    source: Literal["config", "database", "default"]
    position: int = Field(description="1-based, in the order rules apply.")
    label: str = Field(description="How decisions name it: 'rule 2', 'database rule 7'.")
    description: str
    read_only: bool
    rule: dict[str, Any] | None = Field(description="The stored mapping (database rules).")
    comment: str | None
    created: datetime | None


class RuleList(_Response):
    rules: list[RuleInfo]


class RuleCreate(_Request):
    rule: dict[str, Any] = Field(
        description="One entry of the config's access: list, e.g. "
        '{"group": "ci", "repository": "team/*", "action": ["pull", "push"]}.'
    )
    comment: str | None = Field(default=None, max_length=500)
    position: int | None = Field(
        default=None, ge=1, le=100_000, description="1-based among the database's rules."
    )


class RuleMove(_Request):
    position: int = Field(ge=1, le=100_000, description="1-based among the database's rules.")


class AccessCheck(_Request):
    account: _Name = Field(description="An account name, or 'anonymous'.")
    action: Literal["pull", "push", "delete", "*", "catalog"]
    repository: str | None = Field(
        default=None, max_length=1024, description="Omit (or registry:catalog) for the catalog."
    )


class CheckedAccount(_Response):
    name: str
    known: bool = Field(description="false: not in the built-in store; judged with no groups.")
    groups: list[str]
    admin: bool


class AccessDecision(_Response):
    allowed: bool
    rule: str | None = Field(description="The deciding rule's label (several: comma-separated).")
    reason: str
    explanation: str = Field(description="As `hatchway access check` prints it.")
    account: CheckedAccount


class AuditItem(_Response):
    id: int
    time: datetime
    event: str
    outcome: str
    account: str | None
    client_addr: str | None
    user_agent: str | None
    repository: str | None
    scopes_requested: list[str]
    scopes_granted: list[str]
    detail: dict[str, Any]


class AuditPage(_Response):
    events: list[AuditItem]
    next: str | None = Field(description="Cursor of the next page (pass as cursor=); null: end.")


class AuditQuery(_Query):
    account: str | None = Field(default=None, max_length=255)
    event: str | None = Field(default=None, max_length=64, description="login, push, user.add…")
    action: str | None = Field(default=None, max_length=64, description="Same as event.")
    repository: str | None = Field(default=None, max_length=512)
    outcome: Literal["success", "failure", "denied", "throttled", "partial"] | None = None
    since: datetime | None = Field(default=None, description="RFC 3339; no zone: UTC.")
    until: datetime | None = Field(default=None, description="RFC 3339; no zone: UTC.")
    limit: int = Field(default=100, ge=1, le=1000, description="Events per page.")
    cursor: str | None = Field(default=None, max_length=200)
    format: Literal["json", "jsonl", "csv"] | None = Field(
        default=None,
        description="jsonl or csv: the whole matching trail, streamed (also chosen by Accept: "
        "application/jsonl or text/csv); limit and cursor then do not apply.",
    )


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    AccountCreate,
    AccountUpdate,
    PasswordReset,
    RobotCreate,
    GroupCreate,
    RobotTokenCreate,
    RuleCreate,
    RuleMove,
    AccessCheck,
)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    AccountList,
    AccountInfo,
    AccountCreated,
    PasswordSet,
    GroupList,
    GroupInfo,
    AccountTokenList,
    RobotTokenCreated,
    RuleList,
    RuleInfo,
    AccessDecision,
    AuditPage,
)
