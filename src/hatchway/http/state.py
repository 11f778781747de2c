"""Typed application state keys."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from hatchway.auth.gate import Gate
from hatchway.auth.service import TokenService
from hatchway.config.model import Config
from hatchway.registry.service import Registry

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", Registry)
GATE = web.AppKey("gate", Gate)
# The realm in challenges: configured, or None to point at this server's /auth/token.
TOKEN_REALM: web.AppKey[str | None] = web.AppKey("token_realm")
TOKEN_SERVICE = web.AppKey("token_service", TokenService)
JWKS: web.AppKey[Callable[[], dict[str, object]]] = web.AppKey("jwks")
