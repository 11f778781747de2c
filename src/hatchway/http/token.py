"""The built-in token service over HTTP: ``/auth/token`` (GET and OAuth2 POST),
``/auth/revoke`` (RFC 7009) and ``/auth/jwks.json``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from hatchway.auth.device import GRANT_TYPE as DEVICE_CODE
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.principal import ANONYMOUS, Principal
from hatchway.auth.service import TokenRequestError, TokenResponse, TokenService
from hatchway.http.access import client_info
from hatchway.http.federation import TOKEN_EXCHANGE, exchange, federated_secret
from hatchway.http.oauthform import check_text, read_form
from hatchway.http.state import JWKS, TOKEN_SERVICE

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _service(request: web.Request) -> TokenService:
    return request.app[TOKEN_SERVICE]


def _error(exc: TokenRequestError, *, oauth: bool) -> web.Response:
    headers = dict(_NO_STORE)
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="hatchway"'
    if oauth:
        body: dict[str, object] = {"error": exc.error, "error_description": exc.description}
    else:
        # Docker clients read {"errors": [...]} ("unauthorized: incorrect username or
        # password"); the OAuth2 fields ride along for other clients.
        code = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}.get(
            exc.status, "DENIED"
        )
        if exc.status == 400:
            code = "UNSUPPORTED"
        body = {
            "errors": [{"code": code, "message": exc.description}],
            "error": exc.error,
            "error_description": exc.description,
        }
    return web.Response(
        status=exc.status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def _basic(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise TokenRequestError("invalid_request", "malformed Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username or "\x00" in decoded:
        raise TokenRequestError("invalid_request", "malformed Basic credentials")
    return username, password


def _translating(oauth: bool) -> Callable[[_Handler], _Handler]:
    """Turn a TokenRequestError into the error body the endpoint's clients read."""

    def wrap(handler: _Handler) -> _Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except TokenRequestError as exc:
                return _error(exc, oauth=oauth)

        return run

    return wrap


@_translating(oauth=False)
async def token_get(request: web.Request) -> web.StreamResponse:
    """Docker token spec: GET with service, scope(s), account, offline_token, client_id."""
    service = _service(request)
    client = client_info(request)
    query = request.query
    for name, value in query.items():
        check_text(name, value)
    service.check_service(query.get("service"))
    credentials = _basic(request)
    federated = federated_secret(request, credentials[1]) if credentials is not None else None
    if credentials is not None and federated is not None:
        # A workload's ID token as the password, with any username: no refresh token.
        response = await asyncio.to_thread(
            federated.grant, credentials[1], query.getall("scope", []), client, method="basic"
        )
        return web.json_response(response.as_dict(), headers=_NO_STORE)
    if credentials is not None:
        account = query.get("account")
        if account and account != credentials[0]:
            raise TokenRequestError("invalid_request", "account does not match credentials")

    def login_and_grant() -> TokenResponse:
        # One trip to a thread for both steps: bcrypt/SQL and signing both block.
        principal: Principal = ANONYMOUS
        backend = None
        if credentials is not None:
            principal, backend = service.login(*credentials, client)
        return service.grant(
            principal,
            query.getall("scope", []),
            client,
            backend=backend,
            offline=query.get("offline_token", "").lower() == "true",
            client_id=query.get("client_id", ""),
            method="basic" if credentials else "anonymous",
        )

    response = await asyncio.to_thread(login_and_grant)
    return web.json_response(response.as_dict(), headers=_NO_STORE)


async def _authenticate_form(
    service: TokenService, form: dict[str, str], client: ClientInfo
) -> tuple[Principal, str]:
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise TokenRequestError("invalid_request", "grant_type is required")
    if grant_type == "password":
        username, password = form.get("username", ""), form.get("password", "")
        if not username or not password:
            raise TokenRequestError("invalid_request", "username and password are required")
        return await asyncio.to_thread(service.login, username, password, client)
    if grant_type == "refresh_token":
        secret = form.get("refresh_token", "")
        if not secret:
            raise TokenRequestError("invalid_request", "refresh_token is required")
        return await asyncio.to_thread(service.refresh, secret, client)
    raise TokenRequestError("unsupported_grant_type", f"unsupported grant_type {grant_type[:50]!r}")


@_translating(oauth=True)
async def token_post(request: web.Request) -> web.StreamResponse:
    """OAuth2 form: grant_type=password | refresh_token (RFC 6749 sections 4.3 and 6),
    token exchange (RFC 8693) and device_code (RFC 8628)."""
    service = _service(request)
    client: ClientInfo = client_info(request)
    form = await read_form(request)
    service.check_service(form.get("service"))
    if form.get("grant_type") == TOKEN_EXCHANGE:
        return await exchange(request, form, client)
    if form.get("grant_type") == DEVICE_CODE:
        from hatchway.http import device  # it imports this module

        return await device.exchange(request, form, client)
    client_id = form.get("client_id", "")
    if not client_id:
        raise TokenRequestError("invalid_request", "client_id is required")
    federated = (
        federated_secret(request, form.get("password", ""))
        if form.get("grant_type") == "password"
        else None
    )
    if federated is not None:
        response = await asyncio.to_thread(
            federated.grant,
            form["password"],
            form.get("scope", "").split(" "),
            client,
            method="password",
        )
        return web.json_response(response.as_dict(oauth=True), headers=_NO_STORE)
    principal, backend = await _authenticate_form(service, form, client)
    response = await asyncio.to_thread(
        service.grant,
        principal,
        form.get("scope", "").split(" "),
        client,
        backend=backend,
        # A refresh-token grant never hands out a second refresh token: docker keeps
        # the first one as its identitytoken.
        offline=form.get("grant_type") == "password" and form.get("access_type") == "offline",
        client_id=client_id,
        method=form.get("grant_type", ""),
    )
    return web.json_response(response.as_dict(oauth=True), headers=_NO_STORE)


@_translating(oauth=True)
async def revoke(request: web.Request) -> web.StreamResponse:
    """RFC 7009: 200 whether or not the token was known."""
    form = await read_form(request)
    secret = form.get("token", "")
    if not secret:
        raise TokenRequestError("invalid_request", "token is required")
    await asyncio.to_thread(_service(request).revoke, secret)
    return web.Response(status=200, headers=_NO_STORE)


async def jwks(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[JWKS](), headers={"Cache-Control": "max-age=60"})


def setup(app: web.Application) -> None:
    app.router.add_get("/auth/token", token_get)
    app.router.add_post("/auth/token", token_post)
    app.router.add_post("/auth/revoke", revoke)
    app.router.add_get("/auth/jwks.json", jwks)
