"""Typed application state keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from hatchway.audit.sink import AuditSink
from hatchway.auth.federated import FederatedGrants
from hatchway.auth.gate import Gate
from hatchway.auth.service import TokenService
from hatchway.auth.websession import WebSessions
from hatchway.config.model import Config
from hatchway.registry.service import Registry

CONFIG = web.AppKey("config", Config)
# The file the configuration came from (None: embedded defaults); access rules reload from it.
CONFIG_PATH: web.AppKey[Path | None] = web.AppKey("config_path")
REGISTRY = web.AppKey("registry", Registry)
GATE = web.AppKey("gate", Gate)
# The realm in challenges: configured, or None to point at this server's /auth/token.
TOKEN_REALM: web.AppKey[str | None] = web.AppKey("token_realm")
TOKEN_SERVICE = web.AppKey("token_service", TokenService)
JWKS: web.AppKey[Callable[[], dict[str, object]]] = web.AppKey("jwks")
# The audit trail: record() queues (never blocks), commit() is awaited before answering a
# change; None records nothing.
AUDIT: web.AppKey[AuditSink | None] = web.AppKey("audit")
# Called on SIGHUP in the worker's loop; each must return at once (set a flag, wake a thread).
ON_RELOAD: web.AppKey[list[Callable[[], None]]] = web.AppKey("on_reload")
# The web UI's sign-in sessions (also a credential of /api/v1); absent without the UI.
WEB_SESSIONS = web.AppKey("web_sessions", WebSessions)
# Workload identity (identity.federation): ID tokens at /auth/token; None when unconfigured.
FEDERATION: web.AppKey[FederatedGrants | None] = web.AppKey("federation")
