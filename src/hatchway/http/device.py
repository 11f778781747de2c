"""The device authorization grant over HTTP (RFC 8628): ``POST /auth/device/code``, and
the ``urn:ietf:params:oauth:grant-type:device_code`` grant of ``POST /auth/token``.

Errors are OAuth2's JSON (``authorization_pending``, ``slow_down``, ``access_denied``,
``expired_token``, ``invalid_grant``, ``invalid_request``), never a 500. The person's side,
the approval page, is ``/ui/device`` (``http/ui/pages/device.py``).
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlsplit, urlunsplit

from aiohttp import web

from hatchway.auth.device import DeviceGrants
from hatchway.auth.identity.base import ClientInfo
from hatchway.auth.service import TokenRequestError, TokenResponse
from hatchway.http.access import client_info, token_realm
from hatchway.http.oauthform import read_form
from hatchway.http.state import CONFIG, TOKEN_SERVICE
from hatchway.http.token import _NO_STORE, _translating
from hatchway.metadata.devicecodes import DeviceCodeStore

DEVICE = web.AppKey("device_grants", DeviceGrants)
PAGE = "/ui/device"


def verification_uri(request: web.Request) -> str:
    """The approval page as the client reaches this server: beside the token realm (the
    configured one, else this request's scheme and host, which ``http.trustedproxies``
    lets a proxy set)."""
    realm = urlsplit(token_realm(request))
    return urlunsplit((realm.scheme, realm.netloc, PAGE, "", ""))


@_translating(oauth=True)
async def device_code(request: web.Request) -> web.StreamResponse:
    """RFC 8628 section 3.1-3.2: ``client_id`` (required here) and ``scope``."""
    grants = request.app[DEVICE]
    form = await read_form(request)
    client = client_info(request)
    started = await asyncio.to_thread(
        grants.start, form.get("client_id", ""), form.get("scope", ""), client
    )
    page = verification_uri(request)
    body = {
        "device_code": started.device_code,
        "user_code": started.user_code,
        "verification_uri": page,
        "verification_uri_complete": f"{page}?user_code={quote(started.user_code)}",
        "expires_in": started.expires_in,
        "interval": started.interval,
    }
    return web.json_response(body, headers=_NO_STORE)


async def exchange(
    request: web.Request, form: dict[str, str], client: ClientInfo
) -> web.StreamResponse:
    """``POST /auth/token`` with the device_code grant: a pending or slowed-down answer,
    else (once) an access token and a refresh token for the account that approved."""
    grants = request.app.get(DEVICE)
    if grants is None:
        raise TokenRequestError("unsupported_grant_type", "device login is not enabled here")
    service = request.app[TOKEN_SERVICE]

    def work() -> TokenResponse:
        found = grants.poll(form.get("device_code", ""), form.get("client_id", ""), client)
        principal, backend = grants.redeem(found, client)
        return service.grant(
            principal,
            found.scope.split(" "),
            client,
            backend=backend,
            offline=True,  # the point of the grant: docker keeps it as identitytoken
            client_id=found.client_id,
            method="device_code",
        )

    response = await asyncio.to_thread(work)
    return web.json_response(response.as_dict(oauth=True), headers=_NO_STORE)


def setup(app: web.Application) -> None:
    """Serve the grant when ``auth.token.device.enabled`` (the default); call after
    ``token.setup``."""
    config = app[CONFIG]
    token = config.auth.token if config.auth is not None else None
    if token is None or not token.device.enabled:
        return
    service = app[TOKEN_SERVICE]
    app[DEVICE] = DeviceGrants(
        DeviceCodeStore(service.store.db),
        service.limiter,
        service.authenticators,
        service.audit,
        expiration=token.device.expiration,
        interval=token.device.interval,
    )
    app.router.add_post("/auth/device/code", device_code)
