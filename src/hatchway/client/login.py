"""Log in and out of a registry the way ``docker login``/``logout`` do, so docker, skopeo
and podman read the result unchanged.

Login verifies before it stores: ``GET /v2/`` and the challenge it answers. Against a
token service it asks for a refresh token (``access_type=offline``) and stores that as
``identitytoken`` in place of the password, as docker does; the password itself is then
never written. Logout also revokes that refresh token where the token service offers
RFC 7009 revocation, since deleting a local copy does not stop a stolen one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from hatchway.client.auth import CLIENT_ID, RegistryAuth, RegistryAuthError, describe_error
from hatchway.client.challenge import pick_challenge, plain_realm_refused
from hatchway.client.credstore import FileStore, store_for
from hatchway.client.dockerconfig import Credentials, DockerConfig, normalize_server
from hatchway.client.registry import RegistryClient, RegistryClientError

__all__ = ["LoginError", "LoginResult", "LogoutResult", "login", "logout", "revoke", "verify"]

WRONG_CREDENTIALS = "unauthorized: incorrect username or password"
# Answers that say no more than "no": shown as docker's wrong-credentials line. Any other
# reason (a 2FA account's password, a disabled account) is the server's to tell, as docker
# prints it.
_BARE_REFUSALS = frozenset({"", "unauthorized", "unauthorized: authentication required"})


def _refusal(message: str) -> str:
    return WRONG_CREDENTIALS if message.strip().lower() in _BARE_REFUSALS else message


class LoginError(Exception):
    """The registry refused the login or could not be asked (one line, no secret)."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    server: str  # the key the credentials are filed under
    stored_in: str  # config.json's path, or the helper
    plaintext: bool  # a secret now sits base64-encoded in config.json
    identity_token: bool  # a refresh token was stored instead of the password


@dataclass(frozen=True, slots=True)
class LogoutResult:
    server: str
    removed: bool  # there were credentials to remove
    revoked: bool  # the refresh token was revoked at the token service
    warning: str | None = None  # revocation failed; the local copy is gone all the same


def verify(server: str, credentials: Credentials, *, insecure: bool = False) -> str | None:
    """Prove ``credentials`` to ``server``; the refresh token issued, if any."""
    auth = RegistryAuth(credentials, offline=True)
    try:
        with RegistryClient(server, auth, insecure=insecure) as client:
            response = client.ping()
            if response.status_code == 200 and auth.challenge_for(client.base_url) is None:
                # /v2/ is open to anonymous callers here: show the password anyway, so a
                # wrong one is refused now rather than stored.
                raw = f"{credentials.username}:{credentials.password}".encode()
                basic = "Basic " + base64.b64encode(raw).decode("ascii")
                response = client.ping(headers={"Authorization": basic})
    except RegistryAuthError as exc:
        if exc.status in (400, 401, 403) and str(exc).startswith("unauthorized"):
            raise LoginError(_refusal(str(exc))) from None
        raise LoginError(str(exc)) from None
    except (RegistryClientError, httpx.HTTPError) as exc:
        raise LoginError(str(exc) or type(exc).__name__) from None
    if response.status_code == 401:
        raise LoginError(_refusal(describe_error(response)))
    if response.status_code != 200:
        raise LoginError(f"login to {server} failed: {describe_error(response)}")
    return auth.refresh_token


def login(
    server: str,
    credentials: Credentials,
    *,
    insecure: bool = False,
    config: DockerConfig | None = None,
) -> LoginResult:
    """Verify, then store where docker would (credHelpers > credsStore > config.json)."""
    key = normalize_server(server)
    config = config or DockerConfig.load()
    store = store_for(config, key)  # before verifying: a bad config.json fails fast
    refresh = verify(server, credentials, insecure=insecure)
    kept = Credentials(credentials.username, "", refresh) if refresh else credentials
    store.store(key, kept)
    return LoginResult(key, store.description, isinstance(store, FileStore), bool(refresh))


def revoke_url(realm: str) -> str:
    """``…/auth/token`` -> ``…/auth/revoke``: hatchway's endpoint sits beside its realm."""
    parts = urlsplit(realm)
    path = parts.path.rsplit("/", 1)[0] + "/revoke"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def revoke(server: str, refresh_token: str, *, insecure: bool = False) -> bool:
    """Revoke ``refresh_token`` at the token service ``server`` points to (RFC 7009).
    False when the registry has no token service or it offers no revocation."""
    with RegistryClient(server, insecure=insecure) as client:
        response = client.ping()
        challenge = pick_challenge(response.headers.get_list("www-authenticate"))
        if response.status_code != 401 or challenge is None or challenge.scheme != "bearer":
            return False
        refused = plain_realm_refused(client.base_url, challenge.realm, insecure=insecure)
        if refused is not None:
            raise RegistryClientError(refused)
        form = {"token": refresh_token, "token_type_hint": "refresh_token", "client_id": CLIENT_ID}
        answer = client.http.post(revoke_url(challenge.realm), data=form)
    if answer.status_code in (404, 405):
        return False
    if answer.status_code != 200:
        raise RegistryClientError(f"revocation refused: {describe_error(answer)}")
    return True


def logout(
    server: str, *, insecure: bool = False, config: DockerConfig | None = None
) -> LogoutResult:
    """Remove ``server``'s credentials wherever docker would look, revoking a refresh token
    first (best effort: an unreachable registry must not keep a secret on disk)."""
    key = normalize_server(server)
    config = config or DockerConfig.load()
    store = store_for(config, key)
    found = store.get(key)
    revoked, warning = False, None
    if found is not None and found.identity_token:
        try:
            revoked = revoke(server, found.identity_token, insecure=insecure)
        except (RegistryClientError, httpx.HTTPError) as exc:
            warning = f"could not revoke the refresh token: {str(exc) or type(exc).__name__}"
    removed = store.erase(key)
    return LogoutResult(key, removed or found is not None, revoked, warning)
