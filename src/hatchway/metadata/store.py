"""The metadata store: one database, six small stores over it."""

from __future__ import annotations

from hatchway.metadata.accounts import AccountStore
from hatchway.metadata.attempts import LoginAttemptStore
from hatchway.metadata.audit import AuditLog
from hatchway.metadata.engine import Database
from hatchway.metadata.external import ExternalIdentityStore
from hatchway.metadata.gcruns import GcRunStore
from hatchway.metadata.passkeys import PasskeyStore
from hatchway.metadata.pendingsignins import PendingSignInStore
from hatchway.metadata.repoindex import RepositoryIndex
from hatchway.metadata.rules import AccessRuleStore
from hatchway.metadata.tokens import AccessTokenStore, RefreshTokenStore
from hatchway.metadata.twofactor import TwoFactorStore
from hatchway.metadata.websessions import WebSessionStore


class MetadataStore:
    """Accounts, groups, tokens, access rules, the audit trail and login attempt counters
    in one SQL database.

    Synchronous on purpose (the server calls it via ``asyncio.to_thread``). Tables are
    created on construction if missing. Construct it in each worker after fork, or call
    :meth:`dispose` in the child: pooled connections must not cross a fork.
    """

    def __init__(self, dsn: str, *, create: bool = True) -> None:
        self.db = Database(dsn)
        if create:
            self.db.create_schema()
        self.accounts = AccountStore(self.db)
        self.tokens = AccessTokenStore(self.db)
        self.refresh_tokens = RefreshTokenStore(self.db)
        self.audit = AuditLog(self.db)
        self.rules = AccessRuleStore(self.db)
        self.attempts = LoginAttemptStore(self.db)
        self.web_sessions = WebSessionStore(self.db)
        self.index = RepositoryIndex(self.db)
        self.external = ExternalIdentityStore(self.db)
        self.gc_runs = GcRunStore(self.db)
        self.twofactor = TwoFactorStore(self.db)
        self.pending_signins = PendingSignInStore(self.db)
        self.passkeys = PasskeyStore(self.db)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def dispose(self) -> None:
        self.db.dispose()
