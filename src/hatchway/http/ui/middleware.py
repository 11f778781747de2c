"""One middleware for ``/ui``: who is signed in, the CSRF check, and errors as pages.

For every ``/ui`` request but static files it looks up the session cookie once. Every
request that is not GET/HEAD must carry the form field ``csrf`` matching the session's
token (before sign-in, the pre-session cookie's); otherwise it is refused with a 403 page
before any handler runs. Failures become HTML pages in the UI's layout: 403, 404, 405,
and a logged 500 for anything unexpected (never a traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from hatchway.auth.identity.base import IdentityUnavailable
from hatchway.http.ui import csrf, sessions
from hatchway.http.ui.csp import STATIC_PREFIX, is_ui
from hatchway.http.ui.render import render

log = logging.getLogger("hatchway.http.ui")

FORM: web.RequestKey[Mapping[str, str]] = web.RequestKey("ui_form")
MAX_FORM = 64 * 1024


class UiError(Exception):
    """A refusal shown as a page: status, title and a sentence."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


CSRF_REFUSED = UiError(
    403,
    "Form expired",
    "The form was not accepted (its security token is missing or wrong). "
    "Reload the page and try again.",
)


def forbidden(message: str = "You may not see this page.") -> UiError:
    return UiError(403, "Forbidden", message)


def not_found(message: str = "There is no such page.") -> UiError:
    return UiError(404, "Not found", message)


def error_page(request: web.Request, err: UiError) -> web.Response:
    return render(request, "error.html", status=err.status, title=err.title, message=err.message)


async def _read_form(request: web.Request) -> dict[str, str]:
    if (request.content_length or 0) > MAX_FORM:
        raise UiError(413, "Too large", "The form is too large.")
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {}
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


@web.middleware
async def ui_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_ui(request.path) or request.path.startswith(STATIC_PREFIX):
        return await handler(request)
    try:
        found = await sessions.signed_in(request)
        if request.method not in csrf.SAFE_METHODS:
            form = await _read_form(request)
            seed = found.secret if found is not None else sessions.pre_session_secret(request)
            if not csrf.form_ok(seed, form):
                return error_page(request, CSRF_REFUSED)
            request[FORM] = form
        return await handler(request)
    except UiError as err:
        return error_page(request, err)
    except IdentityUnavailable:  # a directory or OpenID provider to re-check with is down
        return error_page(
            request,
            UiError(503, "Unavailable", "The sign-in provider cannot be reached; try again soon."),
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return error_page(request, not_found())
        if exc.status == 405:
            return error_page(request, UiError(405, "Not allowed", "That method is not allowed."))
        return error_page(request, UiError(exc.status, "Refused", exc.reason))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path[:200])
        return error_page(
            request, UiError(500, "Something went wrong", "The server logged the error.")
        )


def form(request: web.Request) -> Mapping[str, str]:
    found: Mapping[str, str] = request.get(FORM, {})
    return found
