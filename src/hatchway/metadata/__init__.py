"""Accounts, groups, tokens, access rules and audit events in SQL (SQLite or PostgreSQL).

Never imports ``auth`` or HTTP: it stores hashes it is given and returns frozen records.
"""

from hatchway.metadata.engine import database_dsn
from hatchway.metadata.records import (
    AccessRuleRecord,
    AccessToken,
    Account,
    AccountKind,
    AuditEvent,
    AuditRecord,
    ConflictError,
    Group,
    InvalidNameError,
    MetadataError,
    NotFoundError,
    Outcome,
    RefreshToken,
)
from hatchway.metadata.store import MetadataStore

__all__ = [
    "AccessRuleRecord",
    "AccessToken",
    "Account",
    "AccountKind",
    "AuditEvent",
    "AuditRecord",
    "ConflictError",
    "Group",
    "InvalidNameError",
    "MetadataError",
    "MetadataStore",
    "NotFoundError",
    "Outcome",
    "RefreshToken",
    "database_dsn",
]
