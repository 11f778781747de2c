"""CSRF checks: every state-changing ``/ui`` request carries the form field ``csrf``, and
every browser call of ``/api/v1`` with the session cookie the header ``X-CSRF-Token``.

The token is derived from the session cookie's secret (``auth.websession.csrf_token``),
or before sign-in from the pre-session cookie's, and compared in constant time. A cross-site
page can make the browser send the cookie (SameSite=Lax does not cover every case, e.g.
a sibling subdomain) but cannot read the token.
"""

from __future__ import annotations

from aiohttp import web

from hatchway.auth.websession import csrf_matches

FIELD = "csrf"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def form_ok(seed: str | None, form: dict[str, str]) -> bool:
    return csrf_matches(seed, form.get(FIELD))


def header_ok(request: web.Request, seed: str) -> bool:
    return csrf_matches(seed, request.headers.get(HEADER))
