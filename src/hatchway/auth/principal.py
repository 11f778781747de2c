"""Who a request acts for, once authentication is done."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hatchway.auth.access import Access


class Kind(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    ROBOT = "robot"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated account (or anonymous).

    ``token_scopes`` is set when the credential was a personal access token or a robot
    token: the account may then do at most what those scopes (glob patterns allowed in
    the name) say, on top of what the policy allows.
    """

    subject: str
    kind: Kind = Kind.USER
    groups: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False
    token_scopes: tuple[Access, ...] | None = None
    token_id: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.kind is Kind.ANONYMOUS


ANONYMOUS = Principal(subject="", kind=Kind.ANONYMOUS)
