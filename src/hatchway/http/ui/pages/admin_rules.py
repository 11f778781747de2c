"""Admin: access rules (the config file's read-only, the database's editable) and the
"explain" box: account, action, repository -> the decision and the rule that decided."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hatchway.auth.adminrules import CHECK_ACTIONS, CheckResult
from hatchway.http.ui.middleware import form
from hatchway.http.ui.pages.admin import Refused, call, change, field, notice, require_admin
from hatchway.http.ui.render import redirect, render
from hatchway.http.ui.services import RULES

RULE_ACTIONS = ("pull", "push", "delete", "catalog", "*")
NOTICES = {
    "added": "The rule is added; it applies from now on.",
    "deleted": "The rule is deleted.",
    "moved": "The rule is moved.",
}
_SPLIT = re.compile(r"[\s,]+")


def _names(value: str) -> list[str] | None:
    found = [v for v in _SPLIT.split(value) if v]
    return found or None


async def rules_page(
    request: web.Request, *, status: int = 200, error: str | None = None, **extra: Any
) -> web.Response:
    _, actor = await require_admin(request)
    service = request.app[RULES]
    views = await call(lambda: service.rules(actor))
    database = [v for v in views if v.source == "database"]
    explained: CheckResult | None = None
    explain_error = None
    query = request.query
    if query.get("account") or query.get("repository"):
        try:
            explained = await call(
                lambda: service.check(
                    actor,
                    query.get("account", "").strip()[:255],
                    query.get("action", "pull"),
                    query.get("repository", "").strip()[:255] or None,
                )
            )
        except Refused as exc:
            explain_error = exc.message
    return render(
        request,
        "admin_rules.html",
        status=status,
        title="Access rules",
        rules=views,
        database_count=len(database),
        database_index={v.id: n for n, v in enumerate(database, start=1)},
        actions=RULE_ACTIONS,
        check_actions=CHECK_ACTIONS,
        explained=explained,
        explain_error=explain_error,
        ask={k: query.get(k, "") for k in ("account", "action", "repository")},
        draft=extra.get("draft", {}),
        error=error,
        notice=notice(request, NOTICES),
    )


async def rules(request: web.Request) -> web.StreamResponse:
    return await rules_page(request)


async def add_rule(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    data = form(request)
    rule: dict[str, Any] = {}
    names = _names(data.get("name", "")[:1000])
    groups = _names(data.get("group", "")[:1000])
    if names:
        rule["name"] = names if len(names) > 1 else names[0]
    if groups:
        rule["group"] = groups if len(groups) > 1 else groups[0]
    repository = field(request, "repository", 255)
    if repository:
        rule["repository"] = repository
    else:
        rule["type"] = "registry"
    chosen = [a for a in RULE_ACTIONS if data.get(f"action-{a}") == "on"]
    rule["action"] = chosen
    comment = field(request, "comment", 500) or None
    service = request.app[RULES]
    try:
        await call(lambda: service.add_rule(actor, rule, comment=comment))
    except Refused as exc:
        draft: dict[str, Any] = {
            k: data.get(k, "") for k in ("name", "group", "repository", "comment")
        }
        draft["actions"] = chosen
        return await rules_page(request, status=exc.status, error=exc.message, draft=draft)
    return redirect(f"{_TO}?done=added")


async def delete_rule(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    rule_id = request.match_info["id"]
    service = request.app[RULES]
    return await change(
        request, rules_page, lambda: service.delete_rule(actor, rule_id), done="deleted", to=_TO
    )


async def move_rule(request: web.Request) -> web.StreamResponse:
    _, actor = await require_admin(request)
    rule_id = request.match_info["id"]
    raw = field(request, "position", 6)
    if not raw.isdigit():
        return await rules_page(request, status=422, error="The position must be a number.")
    service = request.app[RULES]
    return await change(
        request,
        rules_page,
        lambda: service.move_rule(actor, rule_id, int(raw)),
        done="moved",
        to=_TO,
    )


_TO = "/ui/admin/rules"
ROUTES = (
    ("GET", "/ui/admin/rules", rules),
    ("POST", "/ui/admin/rules", add_rule),
    ("POST", "/ui/admin/rules/{id}/delete", delete_rule),
    ("POST", "/ui/admin/rules/{id}/move", move_rule),
)
