"""ID tokens at ``/auth/token``: RFC 8693 token exchange, and the password of a login.

``POST /auth/token`` with ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``,
``subject_token`` (the ID token), ``subject_token_type`` (``…:token-type:id_token`` or
``…:token-type:jwt``) and ``scope`` (Docker's scope syntax, space-separated) answers as
RFC 8693 section 2.2.1 says (``access_token``, ``issued_token_type``, ``token_type``,
``expires_in``, ``scope``) plus Docker's ``token``. A password login (Basic on ``GET``,
``grant_type=password`` on ``POST``) whose password is a JWT from a configured issuer is
the same grant, whatever the username.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hatchway.auth.federated import FederatedGrants
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.service import TokenRequestError
from hatchway.http.state import FEDERATION, TOKEN_SERVICE

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a URN)
SUBJECT_TOKEN_TYPES = frozenset(
    {"urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:jwt"}
)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def grants_for(request: web.Request) -> FederatedGrants | None:
    return request.app.get(FEDERATION)


def federated_secret(request: web.Request, secret: str) -> FederatedGrants | None:
    """The grants, if ``secret`` (a password) is an ID token of a configured issuer."""
    grants = grants_for(request)
    return grants if grants is not None and grants.recognizes(secret) else None


async def exchange(request: web.Request, form: dict[str, str], client: ClientInfo) -> web.Response:
    """RFC 8693 token exchange of a workload's ID token for a registry token."""
    grants = grants_for(request)
    if grants is None:
        raise TokenRequestError(
            "unsupported_grant_type", "token exchange needs identity.federation on this registry"
        )
    subject_token = form.get("subject_token", "")
    token_type = form.get("subject_token_type", "")
    if not subject_token or not token_type:
        raise TokenRequestError(
            "invalid_request", "subject_token and subject_token_type are required"
        )
    if token_type not in SUBJECT_TOKEN_TYPES:
        raise TokenRequestError(
            "invalid_request",
            "subject_token_type must be urn:ietf:params:oauth:token-type:id_token or "
            "urn:ietf:params:oauth:token-type:jwt",
        )
    if "actor_token" in form or "actor_token_type" in form:
        raise TokenRequestError("invalid_request", "actor_token is not supported")
    requested = form.get("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN_TYPE:
        raise TokenRequestError(
            "invalid_request", f"requested_token_type can only be {ACCESS_TOKEN_TYPE}"
        )
    service = request.app[TOKEN_SERVICE]
    audience = form.get("audience")
    if audience is not None and audience != service.service:
        raise TokenRequestError("invalid_target", f"audience must be {service.service!r}")
    if "resource" in form:
        raise TokenRequestError("invalid_target", "resource is not supported; use scope")
    response = await asyncio.to_thread(
        grants.grant,
        subject_token,
        form.get("scope", "").split(" "),
        client,
        method="token-exchange",
    )
    body = response.as_dict(oauth=True)
    body["issued_token_type"] = ACCESS_TOKEN_TYPE
    body["token"] = response.token
    return web.json_response(body, headers=_NO_STORE)
