"""Jinja2 pages: one environment (autoescape on for every template), one ``render``.

Everything a page shows goes through Jinja2's escaping: a repository name, annotation or
account name holding ``<script>`` is shown as text. Templates and static files are package
data (``hatchway/http/ui/templates``, ``.../static``), so a wheel carries them.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hatchway.auth.websession import csrf_token
from hatchway.http.ui import sessions
from hatchway.http.ui.csrf import FIELD

if TYPE_CHECKING:  # imported by the first page rendered, not by every worker at start
    import jinja2

_UNITS = ("B", "kB", "MB", "GB", "TB")


def human_size(value: int | None) -> str:
    """Bytes for people: 1000-based as docker shows them (``12.3 MB``)."""
    if value is None:
        return "-"
    size = float(value)
    for unit in _UNITS:
        if size < 1000 or unit == _UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"  # pragma: no cover


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3 min ago``, ``2 h ago``, ``5 d ago`` (``in 3 d`` for the future)."""
    if value is None:
        return "never"
    now = now or datetime.now(UTC)
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for limit, name, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if seconds < limit:
            amount, unit = int(seconds // size), name
            break
    else:
        amount, unit = int(seconds // 86400), "d"
    return f"in {amount} {unit}" if future else f"{amount} {unit} ago"


def iso(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else ""


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hatchway.http.ui", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = human_size
    env.filters["ago"] = ago
    env.filters["iso"] = iso
    return env


def csrf_for(request: web.Request) -> str:
    """The CSRF token this page's forms carry (session's, else the pre-session's)."""
    found = request.get(sessions.SIGNED_IN)
    if found is not None:
        return str(found.csrf)

    return csrf_token(sessions.pre_session_for_form(request))


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    found = request.get(sessions.SIGNED_IN)
    context.setdefault("error", None)
    context.setdefault("notice", None)
    page = (
        environment()
        .get_template(template)
        .render(
            me=found.principal if found is not None else None,
            session=found.session if found is not None else None,
            csrf=csrf_for(request),
            csrf_field=FIELD,
            path=request.path,
            host=request.host,
            **context,
        )
    )
    response = web.Response(status=status, text=page, content_type="text/html", charset="utf-8")
    sessions.finish(request, response)
    return response


def redirect(location: str) -> web.Response:
    """303 See Other (after a form post: the browser then GETs ``location``)."""
    return web.Response(status=303, headers={"Location": location})
