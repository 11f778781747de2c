"""``/api/v1`` admin endpoints: accounts, robots, groups, everyone's tokens, access rules,
the explain box and the audit trail. Thin: authenticate, read the body or query, call the
services of :mod:`hatchway.auth.admin` (and ``adminrules``, ``adminaudit``) in a thread,
turn their refusals into API errors.

Every endpoint authenticates first and refuses a non-admin (403) before it reads a body or
looks anything up, so nothing here tells a non-admin whether an account exists.
Changes are audited before they are answered (the audit sink's commit).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from datetime import UTC
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ValidationError

from hatchway.audit.export import FORMATS
from hatchway.auth.access import ScopeError
from hatchway.auth.admin import Actor, AdminService, NotApplicable
from hatchway.auth.adminaudit import AuditService
from hatchway.auth.adminrules import ReadOnlyRule, RulesService, RuleView
from hatchway.auth.policy import Policy, PolicyError
from hatchway.auth.selfservice import Caller, NotPermitted, SelfService
from hatchway.http.access import client_info
from hatchway.http.api import adminmodels as m
from hatchway.http.api.authn import authenticate
from hatchway.http.api.errors import PREFIX, ApiError, Refusal, json_response, read_model, refusals
from hatchway.http.state import AUDIT, ON_RELOAD, TOKEN_SERVICE
from hatchway.metadata import (
    AccessToken,
    Account,
    AuditEvent,
    AuditRecord,
    ConflictError,
    Group,
    MetadataError,
    NotFoundError,
)
from hatchway.metadata.auditquery import AuditFilter

ADMIN = web.AppKey("admin_service", AdminService)
RULES = web.AppKey("rules_service", RulesService)
AUDIT_TRAIL = web.AppKey("audit_service", AuditService)
_SELF = web.AppKey("admin_self_service", SelfService)
Q = TypeVar("Q", bound=BaseModel)
NO_STORE = {"Cache-Control": "no-store"}


_REFUSALS: tuple[Refusal, ...] = (
    (NotPermitted, 403, "DENIED"),
    (NotApplicable, 409, "NOT_APPLICABLE"),
    (ReadOnlyRule, 409, "READ_ONLY"),
    (NotFoundError, 404, "NOT_FOUND"),
    (ConflictError, 409, "CONFLICT"),
    (PolicyError, 422, "INVALID_RULE"),
    ((ScopeError, MetadataError, ValueError), 422, "INVALID_REQUEST"),
)


def _refusals() -> AbstractContextManager[None]:
    """The admin services' refusals -> API errors (one place, by type)."""
    return refusals(_REFUSALS)


def actor_for(caller: Caller, request: web.Request, via: str = "api") -> Actor:
    """The admin services' view of who signed in (also for the web UI, with via="ui")."""
    principal = caller.principal
    if caller.token is not None:
        how = f"token {caller.token.name}"
    else:
        how = "session" if caller.session else "password"
    return Actor(
        principal.subject,
        principal.admin,
        via=via,
        auth=how,
        client=client_info(request),
        token_scopes=principal.token_scopes,
    )


async def _admin(request: web.Request) -> Actor:
    """Authenticate (401), then refuse anyone who may not act as admin (403)."""
    caller = await authenticate(request, request.app[TOKEN_SERVICE], request.app[_SELF])
    actor = actor_for(caller, request)
    with _refusals():
        actor.require_admin()
    return actor


async def _run(call: Callable[[], Any]) -> Any:
    with _refusals():
        return await asyncio.to_thread(call)


def read_query(request: web.Request, model: type[Q]) -> Q:
    """The query string as ``model``: 422 for unknown, repeated or malformed parameters."""
    keys = [key for key, _ in request.query.items()]  # keys() shows a repeated key once
    if len(keys) != len(set(keys)):
        raise ApiError(422, "INVALID_REQUEST", "a query parameter is repeated")
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        detail = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)[:20]
        ]
        raise ApiError(422, "INVALID_REQUEST", "bad query parameters", detail) from None


def _done() -> web.Response:
    return web.Response(status=204, headers=NO_STORE)


def _account(a: Account) -> dict[str, Any]:
    return {
        "name": a.name,
        "kind": a.kind.value,
        "admin": a.admin,
        "disabled": a.disabled,
        "groups": sorted(a.groups),
        "created": a.created_at,
        "password_changed": a.password_changed_at,
        "disabled_since": a.disabled_at,
    }


def _group(g: Group) -> m.GroupInfo:
    return m.GroupInfo(name=g.name, members=list(g.members), created=g.created_at)


def _token(t: AccessToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "account": t.account,
        "name": t.name,
        "scopes": list(t.scopes),
        "created": t.created_at,
        "expires": t.expires_at,
        "last_used": t.last_used_at,
        "last_used_address": t.last_used_addr,
        "revoked": t.revoked_at,
        "active": t.active(),
    }


def _rule(r: RuleView) -> m.RuleInfo:
    return m.RuleInfo(
        id=r.id,
        source=r.source,  # type: ignore[arg-type]  # one of the three by construction
        position=r.position,
        label=r.label,
        description=r.description,
        read_only=r.read_only,
        rule=r.rule,
        comment=r.comment,
        created=r.created,
    )


def _audit_item(r: AuditRecord) -> m.AuditItem:
    return m.AuditItem(
        id=r.id,
        time=r.time,
        event=r.event,
        outcome=r.outcome,
        account=r.account,
        client_addr=r.client_addr,
        user_agent=r.user_agent,
        repository=r.repository,
        scopes_requested=list(r.scopes_requested),
        scopes_granted=list(r.scopes_granted),
        detail=r.detail,
    )


# -- accounts ----------------------------------------------------------------------


async def list_accounts(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    query = read_query(request, m.AccountQuery)
    found, last = await _run(lambda: request.app[ADMIN].accounts_page(actor, query.n, query.last))
    following = None
    if last is not None:
        following = f"{PREFIX}/accounts?{urlencode({'n': query.n, 'last': last})}"
    response = json_response(
        m.AccountList(accounts=[m.AccountInfo(**_account(a)) for a in found], next=following)
    )
    if following is not None:
        response.headers["Link"] = f'<{following}>; rel="next"'
    return response


async def create_account(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.AccountCreate)
    account, password = await _run(
        lambda: request.app[ADMIN].create_user(
            actor, body.name, password=body.password, admin=body.admin
        )
    )
    return json_response(m.AccountCreated(**_account(account), password=password), 201)


async def get_account(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    name = request.match_info["name"]
    found = await _run(lambda: request.app[ADMIN].account(actor, name))
    return json_response(m.AccountInfo(**_account(found)))


async def update_account(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.AccountUpdate)
    name = request.match_info["name"]
    admin = request.app[ADMIN]

    def change() -> Account:
        found = admin.account(actor, name)
        if body.disabled is not None:
            found = admin.set_disabled(actor, name, body.disabled)
        if body.admin is not None and body.admin != found.admin:
            found = admin.set_admin(actor, name, body.admin)
        return found

    return json_response(m.AccountInfo(**_account(await _run(change))))


async def reset_password(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.PasswordReset)
    name = request.match_info["name"]
    generated = await _run(lambda: request.app[ADMIN].reset_password(actor, name, body.password))
    return json_response(m.PasswordSet(password=generated))


async def delete_account(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    name = request.match_info["name"]
    await _run(lambda: request.app[ADMIN].delete_account(actor, name))
    return _done()


# -- robots ------------------------------------------------------------------------


async def list_robots(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    found = await _run(lambda: request.app[ADMIN].accounts(actor))
    robots = [m.AccountInfo(**_account(a)) for a in found if a.robot]
    return json_response(m.AccountList(accounts=robots))


async def create_robot(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.RobotCreate)
    account = await _run(lambda: request.app[ADMIN].create_robot(actor, body.name))
    return json_response(m.AccountInfo(**_account(account)), 201)


async def delete_robot(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    name = request.match_info["name"]
    admin = request.app[ADMIN]

    def remove() -> None:
        if not admin.account(actor, name).robot:
            raise NotApplicable(f"{name!r} is a user: delete it with DELETE /accounts/{name}")
        admin.delete_account(actor, name)

    await _run(remove)
    return _done()


async def create_robot_token(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.RobotTokenCreate)
    name = request.match_info["name"]
    record, secret = await _run(
        lambda: request.app[ADMIN].create_robot_token(
            actor, name, name=body.name, scopes=body.scope_list(), expires=body.expires
        )
    )
    return json_response(m.RobotTokenCreated(**_token(record), secret=secret), 201)


# -- groups ------------------------------------------------------------------------


async def list_groups(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    found = await _run(lambda: request.app[ADMIN].groups(actor))
    return json_response(m.GroupList(groups=[_group(g) for g in found]))


async def create_group(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.GroupCreate)
    group = await _run(lambda: request.app[ADMIN].create_group(actor, body.name))
    return json_response(_group(group), 201)


async def get_group(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    name = request.match_info["name"]
    return json_response(_group(await _run(lambda: request.app[ADMIN].group(actor, name))))


async def delete_group(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    name = request.match_info["name"]
    await _run(lambda: request.app[ADMIN].delete_group(actor, name))
    return _done()


async def add_member(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    group, account = request.match_info["name"], request.match_info["account"]
    await _run(lambda: request.app[ADMIN].add_member(actor, group, account))
    return _done()


async def remove_member(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    group, account = request.match_info["name"], request.match_info["account"]
    await _run(lambda: request.app[ADMIN].remove_member(actor, group, account))
    return _done()


# -- everyone's tokens -------------------------------------------------------------


async def list_all_tokens(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    query = read_query(request, m.TokenQuery)
    found = await _run(
        lambda: request.app[ADMIN].tokens(actor, query.account, include_inactive=query.all)
    )
    return json_response(m.AccountTokenList(tokens=[m.AccountToken(**_token(t)) for t in found]))


async def revoke_any_token(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    account, ref = request.match_info["account"], request.match_info["token"]
    await _run(lambda: request.app[ADMIN].revoke_token(actor, account, ref))
    return _done()


# -- access rules ------------------------------------------------------------------


async def list_rules(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    found = await _run(lambda: request.app[RULES].rules(actor))
    return json_response(m.RuleList(rules=[_rule(r) for r in found]))


async def create_rule(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.RuleCreate)
    view = await _run(
        lambda: request.app[RULES].add_rule(
            actor, body.rule, comment=body.comment, position=body.position
        )
    )
    return json_response(_rule(view), 201)


async def delete_rule(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    rule_id = request.match_info["id"]
    await _run(lambda: request.app[RULES].delete_rule(actor, rule_id))
    return _done()


async def move_rule(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.RuleMove)
    rule_id = request.match_info["id"]
    view = await _run(lambda: request.app[RULES].move_rule(actor, rule_id, body.position))
    return json_response(_rule(view))


async def check_access(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    body = await read_model(request, m.AccessCheck)
    result = await _run(
        lambda: request.app[RULES].check(actor, body.account, body.action, body.repository)
    )
    decision = result.decision
    return json_response(
        m.AccessDecision(
            allowed=decision.allowed,
            rule=decision.rule,
            reason=decision.reason,
            explanation=str(decision),
            account=m.CheckedAccount(
                name=result.account,
                known=result.known,
                groups=list(result.groups),
                admin=result.admin,
            ),
        )
    )


# -- audit trail -------------------------------------------------------------------


def _export_format(request: web.Request, query: m.AuditQuery) -> str | None:
    if query.format is not None:
        return None if query.format == "json" else query.format
    accept = request.headers.get("Accept", "")
    if "text/csv" in accept:
        return "csv"
    if "application/jsonl" in accept or "application/x-ndjson" in accept:
        return "jsonl"
    return None


async def get_audit(request: web.Request) -> web.StreamResponse:
    actor = await _admin(request)
    query = read_query(request, m.AuditQuery)
    if query.event is not None and query.action is not None and query.event != query.action:
        raise ApiError(422, "INVALID_REQUEST", "event and action differ (they are one filter)")
    where = AuditFilter(
        account=query.account,
        event=query.event or query.action,
        repository=query.repository,
        outcome=query.outcome,
        since=query.since.replace(tzinfo=query.since.tzinfo or UTC) if query.since else None,
        until=query.until.replace(tzinfo=query.until.tzinfo or UTC) if query.until else None,
    )
    service = request.app[AUDIT_TRAIL]
    fmt = _export_format(request, query)
    if fmt is None:
        found, following = await _run(lambda: service.page(actor, where, query.cursor, query.limit))
        return json_response(m.AuditPage(events=[_audit_item(r) for r in found], next=following))
    produced: Generator[bytes, None, None] = await _run(lambda: service.export(actor, where, fmt))
    response = web.StreamResponse(
        headers={
            **NO_STORE,
            "Content-Type": FORMATS[fmt],
            "Content-Disposition": f'attachment; filename="audit.{fmt}"',
        }
    )
    await response.prepare(request)
    try:
        while (chunk := await asyncio.to_thread(next, produced, None)) is not None:
            await response.write(chunk)
    finally:
        with contextlib.suppress(ValueError):  # still running in its thread: it ends there
            produced.close()
    await response.write_eof()
    return response


def setup(app: web.Application, selfservice: SelfService) -> None:
    """Build the admin services from the token service's parts (call before routing)."""
    service = app.get(TOKEN_SERVICE)
    store = selfservice.store
    sink = app.get(AUDIT)
    # Without a token service (a router built alone, in tests) the store's trail is used.
    audit: Callable[[AuditEvent], None] = (
        service.audit if service is not None else store.audit.record
    )
    if sink is not None:

        def audit(event: AuditEvent) -> None:
            sink.commit(event).result(timeout=30)  # written before the change is answered

    def forget(name: str) -> None:
        for authenticator in service.authenticators if service is not None else ():
            drop = getattr(authenticator, "forget", None)
            if callable(drop):
                drop(name)

    def policy() -> Policy:
        return service.policy if service is not None else Policy()

    def rules_changed() -> None:
        for reload in app.get(ON_RELOAD, []):
            reload()

    app[_SELF] = selfservice
    app[ADMIN] = AdminService(store, audit, on_account_change=forget)
    app[RULES] = RulesService(store, audit, policy, on_change=rules_changed)
    app[AUDIT_TRAIL] = AuditService(store, audit)


__all__ = ["ADMIN", "AUDIT_TRAIL", "RULES", "actor_for", "setup"]
