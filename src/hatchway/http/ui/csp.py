"""Security headers for every ``/ui`` response (and the ``/`` redirect).

The Content-Security-Policy allows scripts, styles and images from this origin only
(``script-src 'self'``: no inline script, no ``eval``, nothing from a CDN), forms that post
only here, and no framing; ``X-Frame-Options: DENY`` says the same to older browsers.
Pages are never cached (they show secrets once, and who is signed in).
"""

from __future__ import annotations

from aiohttp import web

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
STATIC_PREFIX = "/ui/static/"


def is_ui(path: str) -> bool:
    return path in ("/", "/ui") or path.startswith("/ui/")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if not is_ui(request.path):
        return
    for key, value in HEADERS.items():
        response.headers[key] = value
    if request.path.startswith(STATIC_PREFIX):
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
    else:
        response.headers["Cache-Control"] = "no-store"
