"""``/api/v1``: the management API's endpoints, declared once in ``ROUTES``.

The table feeds both the router and the OpenAPI document (:mod:`.openapi`), so a route
cannot exist without being documented. Handlers stay thin: read the body, call
:class:`SelfService` in a thread, turn its refusals into API errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Literal

from aiohttp import web

from hatchway.auth.access import ScopeError
from hatchway.auth.credentials.ratelimit import Throttled
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.identity.local import LocalAuthenticator
from hatchway.auth.selfservice import (
    Caller,
    NoPassword,
    NotInStore,
    NotPermitted,
    SelfService,
    WrongPassword,
)
from hatchway.http.access import client_info
from hatchway.http.api import models
from hatchway.http.api.admin import setup as _setup_admin
from hatchway.http.api.adminroutes import ADMIN_ROUTES
from hatchway.http.api.authn import authenticate
from hatchway.http.api.errors import (
    PREFIX,
    Refusal,
    json_response,
    read_model,
    refusals,
)
from hatchway.http.api.passkeys import PASSKEY_ROUTES
from hatchway.http.api.repositories import REPOSITORY_ROUTES
from hatchway.http.api.route import SELF_SERVICE, Route
from hatchway.http.api.twofactor import TWOFACTOR, TWOFACTOR_ADMIN_ROUTES, TWOFACTOR_ROUTES
from hatchway.http.api.twofactor import state as twofactor_state
from hatchway.http.state import TOKEN_SERVICE
from hatchway.metadata import AccessToken, ConflictError, MetadataError, NotFoundError

_REFUSALS: tuple[Refusal, ...] = (
    (NotPermitted, 403, "DENIED"),
    (WrongPassword, 403, "WRONG_PASSWORD"),
    ((NoPassword, NotInStore), 409, "NOT_APPLICABLE"),
    (NotFoundError, 404, "NOT_FOUND"),
    (ConflictError, 409, "CONFLICT"),
    ((ScopeError, MetadataError, ValueError), 422, "INVALID_REQUEST"),
)


def _refusals() -> AbstractContextManager[None]:
    """The domain's refusals -> API errors (one place, by type)."""
    return refusals(_REFUSALS, wait=Throttled)


async def _caller(request: web.Request) -> tuple[SelfService, Caller]:
    selfservice = request.app[SELF_SERVICE]
    return selfservice, await authenticate(request, request.app[TOKEN_SERVICE], selfservice)


def token_info(token: AccessToken) -> models.TokenInfo:
    return models.TokenInfo(
        id=token.id,
        name=token.name,
        scopes=list(token.scopes),
        created=token.created_at,
        expires=token.expires_at,
        last_used=token.last_used_at,
        last_used_address=token.last_used_addr,
    )


async def get_me(request: web.Request) -> web.StreamResponse:
    selfservice, caller = await _caller(request)
    profile = await asyncio.to_thread(selfservice.me, caller)
    twofactor = await asyncio.to_thread(twofactor_state, request.app[TWOFACTOR], caller)
    method: Literal["password", "token", "session"] = (
        "token" if profile.token is not None else "session" if caller.session else "password"
    )
    return json_response(
        models.Me.model_validate(
            {
                "name": profile.name,
                "kind": profile.kind,
                "admin": profile.admin,
                "groups": list(profile.groups),
                "created": profile.created,
                "backend": profile.backend,
                "authentication": models.Authentication(
                    method=method,
                    token=token_info(profile.token) if profile.token is not None else None,
                ),
                "twofactor": twofactor,
            }
        )
    )


async def put_password(request: web.Request) -> web.StreamResponse:
    selfservice, caller = await _caller(request)
    body = await read_model(request, models.PasswordChange)
    with _refusals():
        await asyncio.to_thread(
            selfservice.change_password,
            caller,
            body.old_password,
            body.new_password,
            client_info(request),
        )
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def list_tokens(request: web.Request) -> web.StreamResponse:
    selfservice, caller = await _caller(request)
    found = await asyncio.to_thread(selfservice.tokens, caller)
    return json_response(models.TokenList(tokens=[token_info(t) for t in found]))


async def create_token(request: web.Request) -> web.StreamResponse:
    selfservice, caller = await _caller(request)
    body = await read_model(request, models.TokenCreate)
    with _refusals():
        record, secret = await asyncio.to_thread(
            lambda: selfservice.create_token(
                caller,
                name=body.name,
                scopes=body.scope_list(),
                expires=body.expires,
                client=client_info(request),
                clamp="expires" not in body.model_fields_set,
            )
        )
    created = models.TokenCreated(**token_info(record).model_dump(), secret=secret)
    return json_response(created, status=201)


async def delete_token(request: web.Request) -> web.StreamResponse:
    selfservice, caller = await _caller(request)
    name = request.match_info["name"]
    with _refusals():
        await asyncio.to_thread(selfservice.revoke_token, caller, name, client_info(request))
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def openapi_document(request: web.Request) -> web.StreamResponse:
    from hatchway.http.api.openapi import document

    return web.json_response(document(ROUTES))


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/me",
        get_me,
        "Who the credentials belong to, and how they signed in",
        responses={200: models.Me},
    ),
    Route(
        "PUT",
        "/me/password",
        put_password,
        "Change the password (password sign-in only; ends docker sessions)",
        body=models.PasswordChange,
        responses={204: None},
        errors=(403, 409),
    ),
    Route(
        "GET",
        "/me/tokens",
        list_tokens,
        "The account's live access tokens (never their secrets)",
        responses={200: models.TokenList},
    ),
    Route(
        "POST",
        "/me/tokens",
        create_token,
        "Create an access token; the secret is in this response only",
        body=models.TokenCreate,
        responses={201: models.TokenCreated},
        errors=(403, 409),
    ),
    Route(
        "DELETE",
        "/me/tokens/{name}",
        delete_token,
        "Revoke a live access token by name (signed in with a token: itself, or one "
        "its scopes cover)",
        responses={204: None},
        errors=(403, 404),
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi_document,
        "This document",
        responses={200: None},
        authenticated=False,
    ),
    *REPOSITORY_ROUTES,
    *ADMIN_ROUTES,
    *TWOFACTOR_ROUTES,
    *TWOFACTOR_ADMIN_ROUTES,
    *PASSKEY_ROUTES,
)


def setup(app: web.Application, selfservice: SelfService) -> None:
    app[SELF_SERVICE] = selfservice
    _setup_admin(app, selfservice)
    for route in ROUTES:
        app.router.add_route(route.method, PREFIX + (route.pattern or route.path), route.handler)


def self_service_for(app: web.Application) -> SelfService | None:
    """Built from the token service's parts: its store, local verifier, audit and limiter."""
    service = app[TOKEN_SERVICE]
    local = next((a for a in service.authenticators if isinstance(a, LocalAuthenticator)), None)
    if local is None:
        return None
    limiter = service.limiter

    def guard(name: str, client: ClientInfo, check: Callable[[], bool]) -> bool:
        # A wrong old password is a failed login: the same limiter as /auth/token,
        # counted before the password is checked.
        return limiter.login(name, client.address, lambda: True if check() else None) is not None

    return SelfService(
        service.store,
        local.verifier,
        service.audit,
        guard=guard,
        on_password_change=local.forget,
    )


__all__ = ["ROUTES", "SELF_SERVICE", "Route", "self_service_for", "setup", "token_info"]
