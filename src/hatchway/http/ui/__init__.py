"""The web UI under ``/ui``: server-rendered Jinja2 pages over the same services as the
management API, with a little progressive-enhancement JavaScript from ``/ui/static``.

Mounted with the built-in token service (like ``/api/v1``). Session cookie handling, CSRF
and the security headers each live in one module (:mod:`.sessions`, :mod:`.csrf`,
:mod:`.csp`); :mod:`.middleware` applies them to every ``/ui`` request.
"""
