"""The OpenID provider as hatchway talks to it: discovery, the authorization URL (PKCE
S256, ``state``, ``nonce``), the code exchange with ID token verification, and the later
re-checks with the provider's refresh token (or its access token at userinfo).

The protocol pieces are authlib's: the authorization request and token requests are
built by its RFC 6749 / RFC 7636 helpers, and the ID token's claims are checked by its
OpenID Connect ``CodeIDToken`` (``iss``, ``aud``/``azp``, ``exp``/``iat``, ``nonce``,
``at_hash``) after joserfc (authlib's JOSE library) has checked the signature against the
provider's JWKS with an allow-list of asymmetric algorithms: as authlib's own OpenID
client does, without its deprecated httpx glue. httpx carries the requests. This module
adds the key rotation (an unknown ``kid`` refetches the JWKS, at most once a
:data:`JWKS_REFETCH` seconds) and caching.

The sign-in runs in the event loop with httpx's async client; the re-checks run in the
token service's worker threads (as the other identity sources do) with its sync client.
No call here logs or raises a token, a code or the client secret.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from hatchway.config.identity_oidc import OidcConfig, issuer_problem

log = logging.getLogger("hatchway.auth.oidc")

TIMEOUT = 10.0
JWKS_REFETCH = 60.0  # an unknown kid refetches the keys at most this often
METADATA_TTL = 3600.0
LEEWAY = 60  # seconds of clock skew allowed on exp/iat
# Asymmetric algorithms only: an HS256 token "signed" with a public key is refused.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
OFFLINE = "offline_access"
_MAX_BODY = 1 << 20


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered nonsense; safe to show and log."""


class ProviderRefused(Exception):
    """The provider refused (an OAuth error code) or its answer did not verify; the
    message is safe to show and log (never a token)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    scopes_supported: frozenset[str]
    algorithms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tokens:
    """What a sign-in or a re-check got: the claims (the ID token's, then userinfo's for
    what the ID token lacks) and the provider's tokens to keep for the next check."""

    claims: Mapping[str, Any]
    refresh_token: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)


def _parse_metadata(config: OidcConfig, body: Any) -> ProviderMetadata:
    if not isinstance(body, dict):
        raise ProviderUnavailable("discovery: not a JSON object")
    # OpenID Connect Discovery 1.0, 4.3: the issuer must be exactly the one configured.
    if body.get("issuer") != config.issuer:
        raise ProviderUnavailable(
            f"discovery: the provider says its issuer is {str(body.get('issuer'))[:200]!r}, "
            f"not {config.issuer!r}"
        )
    urls: dict[str, str | None] = {}
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = body.get(key)
        if value is None and key == "userinfo_endpoint":
            urls[key] = None
            continue
        if not isinstance(value, str) or issuer_problem(value) is not None:
            raise ProviderUnavailable(f"discovery: {key} is missing or not https")
        urls[key] = value
    scopes = body.get("scopes_supported")
    supported = (
        frozenset(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else None
    )
    offered = body.get("id_token_signing_alg_values_supported")
    algorithms = tuple(a for a in offered if a in ALGORITHMS) if isinstance(offered, list) else ()
    return ProviderMetadata(
        issuer=config.issuer,
        authorization_endpoint=str(urls["authorization_endpoint"]),
        token_endpoint=str(urls["token_endpoint"]),
        jwks_uri=str(urls["jwks_uri"]),
        userinfo_endpoint=urls["userinfo_endpoint"],
        scopes_supported=supported or frozenset(),
        algorithms=algorithms or ("RS256",),  # Discovery: RS256 must be supported
    )


def _json(response: httpx.Response, what: str) -> Any:
    if len(response.content) > _MAX_BODY:
        raise ProviderUnavailable(f"{what}: answer too large")
    try:
        return response.json()
    except ValueError:
        raise ProviderUnavailable(f"{what}: HTTP {response.status_code}, not JSON") from None


def _ok_json(response: httpx.Response, what: str) -> Any:
    if response.status_code != 200:
        raise ProviderUnavailable(f"{what}: HTTP {response.status_code}")
    return _json(response, what)


def _token_answer(response: httpx.Response) -> dict[str, Any]:
    """RFC 6749 5.1 / 5.2: the token response, or ProviderRefused with its error code."""
    body = _json(response, "token endpoint")
    if not isinstance(body, dict):
        raise ProviderUnavailable("token endpoint: not a JSON object")
    if response.status_code == 200 and isinstance(body.get("access_token"), str):
        return body
    error = body.get("error")
    if not isinstance(error, str) or response.status_code >= 500:
        raise ProviderUnavailable(f"token endpoint: HTTP {response.status_code}")
    text = f"the provider refused: {error[:64]}"
    description = body.get("error_description")
    if isinstance(description, str) and description:
        text += f" ({description[:200]})"
    raise ProviderRefused(error[:64], text)


def _userinfo_body(response: httpx.Response) -> dict[str, Any]:
    body = _ok_json(response, "userinfo")
    if not isinstance(body, dict):
        raise ProviderUnavailable("userinfo: not a JSON object")
    return body


def _merge(claims: dict[str, Any], info: Mapping[str, Any]) -> None:
    """Userinfo adds what the ID token lacks; it must be about the same subject (Core 5.3.2)."""
    if info.get("sub") != claims.get("sub"):
        raise ProviderRefused("invalid_token", "userinfo is about another subject")
    for key, value in info.items():
        claims.setdefault(key, value)


def _failed(what: str, exc: httpx.HTTPError) -> ProviderUnavailable:
    return ProviderUnavailable(f"{what}: {type(exc).__name__}")


class Provider:
    """One configured provider; shared by a worker's event loop and its threads."""

    def __init__(
        self,
        config: OidcConfig,
        client_secret: str,
        *,
        timeout: float = TIMEOUT,
        jwks_refetch: float = JWKS_REFETCH,
    ) -> None:
        self.config = config
        # RFC 6749 2.3.1: client_secret_basic form-encodes both parts.
        self._auth = httpx.BasicAuth(
            urllib.parse.quote_plus(config.clientid), urllib.parse.quote_plus(client_secret)
        )
        self._timeout = timeout
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: KeySet | None = None
        self._jwks_refetch = jwks_refetch
        self._keys_at = -jwks_refetch

    @property
    def name(self) -> str:
        return self.config.display_name

    # -- discovery and keys --------------------------------------------------------------

    def _cached_metadata(self) -> ProviderMetadata | None:
        hit = self._metadata
        if hit is not None and time.monotonic() - hit[0] < METADATA_TTL:
            return hit[1]
        return None

    def _keep_metadata(self, response: httpx.Response) -> ProviderMetadata:
        found = _parse_metadata(self.config, _ok_json(response, "discovery"))
        self._metadata = (time.monotonic(), found)
        return found

    async def metadata(self) -> ProviderMetadata:
        found = self._cached_metadata()
        if found is not None:
            return found
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.get(self.config.discovery_url)
        except httpx.HTTPError as exc:
            raise _failed("discovery", exc) from None
        return self._keep_metadata(response)

    def metadata_sync(self) -> ProviderMetadata:
        found = self._cached_metadata()
        if found is not None:
            return found
        try:
            with httpx.Client(timeout=self._timeout) as http:
                response = http.get(self.config.discovery_url)
        except httpx.HTTPError as exc:
            raise _failed("discovery", exc) from None
        return self._keep_metadata(response)

    def _keys_due(self) -> bool:
        """May the JWKS be fetched (again) now? At most once a JWKS_REFETCH seconds."""
        with self._lock:
            if self._keys is not None and time.monotonic() - self._keys_at < self._jwks_refetch:
                return False
            self._keys_at = time.monotonic()
            return True

    def _set_keys(self, response: httpx.Response) -> None:
        body = _ok_json(response, "jwks")
        if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
            raise ProviderUnavailable("jwks: not a JWK set")
        try:
            self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as exc:
            raise ProviderUnavailable(f"jwks: {exc}"[:200]) from None

    async def _refresh_keys(self, metadata: ProviderMetadata) -> bool:
        if not self._keys_due():
            return False
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.get(metadata.jwks_uri)
        except httpx.HTTPError as exc:
            raise _failed("jwks", exc) from None
        self._set_keys(response)
        log.info("identity.oidc: fetched the provider's signing keys")
        return True

    # -- the sign-in ---------------------------------------------------------------------

    def scopes(self, metadata: ProviderMetadata) -> list[str]:
        """The configured scopes, plus ``offline_access`` where the provider offers it:
        its refresh token is how hatchway learns later that a user was disabled."""
        scopes = list(self.config.scopes)
        if OFFLINE in metadata.scopes_supported and OFFLINE not in scopes:
            scopes.append(OFFLINE)
        return scopes

    async def authorization_url(
        self, redirect_uri: str, state: str, nonce: str, verifier: str
    ) -> str:
        metadata = await self.metadata()
        scopes = self.scopes(metadata)
        extra: dict[str, str] = {
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if OFFLINE in scopes:
            extra["prompt"] = "consent"  # OpenID Connect Core 11: offline_access needs it
        return str(
            prepare_grant_uri(
                metadata.authorization_endpoint,
                self.config.clientid,
                "code",
                redirect_uri=redirect_uri,
                scope=" ".join(scopes),
                state=state,
                **extra,
            )
        )

    def _token_request(
        self, metadata: ProviderMetadata, grant_type: str, **params: str
    ) -> httpx.Request:
        body = prepare_token_request(grant_type, **params)
        request = httpx.Request(
            "POST",
            metadata.token_endpoint,
            content=body.encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        return next(self._auth.auth_flow(request))

    async def exchange(self, code: str, verifier: str, redirect_uri: str, nonce: str) -> Tokens:
        """Redeem the code (with the PKCE verifier), verify the ID token, read userinfo."""
        metadata = await self.metadata()
        request = self._token_request(
            metadata,
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=verifier,
        )
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                token = _token_answer(await http.send(request))
        except httpx.HTTPError as exc:
            raise _failed("token endpoint", exc) from None
        id_token = token.get("id_token")
        access_token = token.get("access_token")
        if not isinstance(id_token, str):
            raise ProviderRefused("invalid_token", "the provider sent no ID token")
        claims = await self.verify_id_token(id_token, nonce=nonce, access_token=access_token)
        if metadata.userinfo_endpoint is not None:
            try:
                async with httpx.AsyncClient(timeout=self._timeout) as http:
                    response = await http.get(
                        metadata.userinfo_endpoint,
                        headers={"Authorization": f"Bearer {access_token}"},
                    )
            except httpx.HTTPError as exc:
                raise _failed("userinfo", exc) from None
            _merge(claims, _userinfo_body(response))
        refresh = token.get("refresh_token")
        return Tokens(claims, refresh if isinstance(refresh, str) else None, access_token)

    async def verify_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """Signature (JWKS, refetched on an unknown kid), iss, aud, exp, iat, nonce."""
        metadata = await self.metadata()
        if self._keys is None:
            await self._refresh_keys(metadata)
        for attempt in (1, 2):
            try:
                return self._decode(metadata, id_token, nonce, access_token)
            except InvalidKeyIdError:
                if attempt == 2 or not await self._refresh_keys(metadata):
                    break
        raise ProviderRefused("invalid_token", "the ID token is signed with an unknown key")

    def _decode(
        self, metadata: ProviderMetadata, id_token: str, nonce: str, access_token: str | None
    ) -> dict[str, Any]:
        keys = self._keys
        if keys is None:
            raise InvalidKeyIdError
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.config.clientid}
        if access_token is not None:
            params["access_token"] = access_token
        try:
            token = jwt.decode(
                id_token, keys, registry=JWSRegistry(algorithms=list(metadata.algorithms))
            )
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": self.config.issuer},
                    "aud": {"essential": True, "value": self.config.clientid},
                    "nonce": {"essential": True, "value": nonce},
                },
                params,
            )
            claims.validate(leeway=LEEWAY)
        except InvalidKeyIdError:
            raise
        except (JoseError, ValueError) as exc:
            detail = getattr(exc, "description", None) or getattr(exc, "error", None) or exc
            raise ProviderRefused(
                "invalid_token", f"the ID token is not valid: {str(detail)[:200]}"
            ) from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise ProviderRefused("invalid_token", "the ID token has no subject")
        return dict(claims)

    # -- the re-check (sync: in a worker thread) -----------------------------------------

    def check(
        self, subject: str, refresh_token: str | None, access_token: str | None
    ) -> Tokens | None:
        """The user's claims as the provider has them now, or None when the provider no
        longer accepts the user (``invalid_grant`` on refresh, userinfo refused, another
        subject). Raises :class:`ProviderUnavailable` when it cannot tell."""
        metadata = self.metadata_sync()
        with httpx.Client(timeout=self._timeout) as http:
            if refresh_token is not None:
                request = self._token_request(
                    metadata, "refresh_token", refresh_token=refresh_token
                )
                try:
                    token = _token_answer(http.send(request))
                except ProviderRefused as exc:
                    log.info("identity.oidc: the provider refused a refresh: %s", exc.error)
                    return None
                except httpx.HTTPError as exc:
                    raise _failed("refresh", exc) from None
                access_token = token["access_token"]
                rotated = token.get("refresh_token")
                if isinstance(rotated, str):
                    refresh_token = rotated
            if access_token is None:
                return None  # nothing to ask the provider with: not confirmed
            if metadata.userinfo_endpoint is None:
                # The refresh itself was the answer (no userinfo to read groups from).
                return Tokens({"sub": subject}, refresh_token, access_token)
            try:
                response = http.get(
                    metadata.userinfo_endpoint, headers={"Authorization": f"Bearer {access_token}"}
                )
            except httpx.HTTPError as exc:
                raise _failed("userinfo", exc) from None
        if response.status_code in (401, 403):
            return None  # the access token, or its user, is no longer accepted
        info = _userinfo_body(response)
        if info.get("sub") != subject:
            return None
        return Tokens(info, refresh_token, access_token)

    def probe(self) -> None:
        """Raise ProviderUnavailable unless discovery and the JWKS answer (start-up)."""
        metadata = self.metadata_sync()
        try:
            with httpx.Client(timeout=self._timeout) as http:
                response = http.get(metadata.jwks_uri)
        except httpx.HTTPError as exc:
            raise _failed("jwks", exc) from None
        _ok_json(response, "jwks")


__all__ = [
    "ALGORITHMS",
    "Provider",
    "ProviderMetadata",
    "ProviderRefused",
    "ProviderUnavailable",
    "Tokens",
]
