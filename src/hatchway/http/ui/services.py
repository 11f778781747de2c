"""The admin services the UI's admin pages call (``auth.admin``, ``auth.adminrules``,
``auth.adminaudit``), built from the token service's parts as the API's are: changes are
audited (written before the page answers), a changed account is forgotten by the local
authenticator's cache at once, and a changed rule reloads this worker's policy at once.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hatchway.auth.admin import Actor, AdminService
from hatchway.auth.adminaudit import AuditService
from hatchway.auth.adminrules import RulesService
from hatchway.auth.policy import Policy
from hatchway.auth.websession import SignedIn
from hatchway.http.access import client_info
from hatchway.http.state import AUDIT, ON_RELOAD, TOKEN_SERVICE
from hatchway.metadata import AuditEvent

ADMIN = web.AppKey("ui_admin", AdminService)
RULES = web.AppKey("ui_rules", RulesService)
AUDIT_TRAIL = web.AppKey("ui_audit_trail", AuditService)


def setup(app: web.Application) -> None:
    service = app[TOKEN_SERVICE]
    store = service.store
    sink = app.get(AUDIT)
    audit: Callable[[AuditEvent], None] = service.audit
    if sink is not None:

        def audit(event: AuditEvent) -> None:
            sink.commit(event).result(timeout=30)  # written before the change is answered

    def forget(name: str) -> None:
        for authenticator in service.authenticators:
            drop = getattr(authenticator, "forget", None)
            if callable(drop):
                drop(name)

    def policy() -> Policy:
        return service.policy

    def rules_changed() -> None:
        for reload in app.get(ON_RELOAD, []):
            reload()

    app[ADMIN] = AdminService(store, audit, on_account_change=forget)
    app[RULES] = RulesService(store, audit, policy, on_change=rules_changed)
    app[AUDIT_TRAIL] = AuditService(store, audit)


def actor_for(request: web.Request, found: SignedIn) -> Actor:
    """The admin services' view of who is signed in to the UI."""
    return Actor(
        found.principal.subject,
        found.principal.admin,
        via="ui",
        auth="session",
        client=client_info(request),
    )
