"""Registry bearer tokens (Docker token-auth JWTs): mint, and verify in one call.

Verification checks everything or returns nothing: the header's ``alg`` against the
allow-list and against the key's own type, the key (found by ``kid``, or by a trusted
``x5c`` chain for external issuers, never by what the token says about itself), the
signature, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` with leeway, and that every claim the
spec names is present.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import jwt

from hatchway.auth.access import Access, Resource
from hatchway.auth.tokens.errors import TokenError
from hatchway.auth.tokens.jwk import ALGORITHMS, VerificationKey, algorithm_for
from hatchway.auth.tokens.keys import KeyStore

MIN_LIFETIME = 60  # the token spec: clients assume at least 60 seconds
DEFAULT_LIFETIME = 300
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti")
# Private claim: the personal access token or robot token the JWT was minted from, so
# revoking that token revokes its JWTs. An ID, not a secret.
TOKEN_ID_CLAIM = "token_id"  # noqa: S105 (a claim name, not a secret)
MAX_TOKEN_LENGTH = 64 * 1024  # a header with a certificate chain fits many times over


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str = field(repr=False)
    expires_in: int
    issued_at: datetime
    jti: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str  # "" for an anonymous token
    audience: str  # the audience this verifier accepted
    issuer: str
    access: list[Access]
    jti: str
    issued_at: datetime
    expires_at: datetime
    not_before: datetime
    key_id: str | None = None
    token_id: str | None = None


@runtime_checkable
class KeySource(Protocol):
    """Finds the trusted key a token was signed with, or raises :class:`TokenError`."""

    def resolve(self, header: Mapping[str, object]) -> VerificationKey: ...


class _KidLookup:
    """Adapts ``() -> {kid: key}`` to a :class:`KeySource`."""

    def __init__(self, keys: Callable[[], Mapping[str, VerificationKey]]) -> None:
        self._keys = keys

    def resolve(self, header: Mapping[str, object]) -> VerificationKey:
        kid = header.get("kid")
        key = self._keys().get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("token is signed by an unknown key")
        return key


class TokenIssuer:
    def __init__(
        self, keys: KeyStore, issuer: str, expiration: int = DEFAULT_LIFETIME, *, x5c: bool = True
    ) -> None:
        """``x5c=False`` leaves the certificate out of the header, for verifiers that only
        look keys up by ``kid`` (distribution 3.x configured with ``jwks`` and no bundle
        rejects any token whose ``x5c`` does not chain to its empty root pool).
        """
        self.keys = keys
        self.issuer = issuer
        self.expiration = max(MIN_LIFETIME, int(expiration))
        self.x5c = x5c

    def mint(
        self,
        subject: str,
        audience: str,
        access: list[Access],
        *,
        lifetime: int | None = None,
        token_id: str | None = None,
        not_after: int | None = None,
    ) -> IssuedToken:
        """``not_after`` (epoch seconds) caps the expiry below the usual lifetime, even
        under :data:`MIN_LIFETIME`: a token minted for a shorter-lived credential (a
        federated ID token) must not outlive it."""
        key = self.keys.signing_key()
        now = int(time.time())
        expires_in = max(MIN_LIFETIME, int(lifetime if lifetime is not None else self.expiration))
        if not_after is not None:
            expires_in = min(expires_in, not_after - now)
            if expires_in < 1:
                raise ValueError("not_after is not in the future")
        jti = secrets.token_urlsafe(18)
        payload = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,  # a string: distribution 2.x cannot parse a list here
            "exp": now + expires_in,
            "nbf": now,
            "iat": now,
            "jti": jti,
            "access": [a.claim() for a in access],
        }
        if token_id is not None:
            payload[TOKEN_ID_CLAIM] = token_id
        headers: dict[str, Any] = {"typ": "JWT", "kid": key.kid}
        if self.x5c:
            headers["x5c"] = list(key.x5c)
        token = jwt.encode(payload, key.private_key, algorithm=key.algorithm, headers=headers)
        return IssuedToken(
            token=token,
            expires_in=expires_in,
            issued_at=datetime.fromtimestamp(now, UTC),
            jti=jti,
            expires_at=datetime.fromtimestamp(now + expires_in, UTC),
        )


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource | Callable[[], Mapping[str, VerificationKey]],
        issuer: str,
        audience: str,
        leeway: int = 30,
    ) -> None:
        self.keys = keys if isinstance(keys, KeySource) else _KidLookup(keys)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    def verify(self, token: str) -> Claims:
        """The token's claims if it is valid now, else :class:`TokenError`."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token is malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenError("token is malformed") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenError("token algorithm is not allowed")
        key = self.keys.resolve(header)
        if algorithm_for(key) != alg:
            raise TokenError("token algorithm does not match its key")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenError(_reason(exc)) from None
        kid = header.get("kid")
        token_id = payload.get(TOKEN_ID_CLAIM)
        if token_id is not None and not isinstance(token_id, str):
            raise TokenError("token token_id claim is malformed")
        return Claims(
            subject=payload["sub"],
            audience=self.audience,
            issuer=payload["iss"],
            access=_access(payload.get("access")),
            jti=payload["jti"],
            issued_at=_time(payload["iat"]),
            expires_at=_time(payload["exp"]),
            not_before=_time(payload["nbf"]),
            key_id=kid if isinstance(kid, str) else None,
            token_id=token_id,
        )


def _reason(exc: jwt.InvalidTokenError) -> str:
    # Our own wording: safe to show, and never echoes claim values back.
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token is not valid yet"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "token is for another audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "token is from an untrusted issuer"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the {exc.claim} claim"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "token signature is invalid"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "token algorithm is not allowed"
    if isinstance(exc, jwt.DecodeError):
        return "token is malformed"
    return "token is invalid"


def _time(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def _access(value: object) -> list[Access]:
    """The ``access`` claim as :class:`Access` entries; absent means no access."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TokenError("token access claim is malformed")
    result = []
    for entry in value:
        if not isinstance(entry, dict):
            raise TokenError("token access claim is malformed")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if (
            not isinstance(kind, str)
            or not isinstance(name, str)
            or not isinstance(actions, list)
            or not all(isinstance(a, str) for a in actions)
        ):
            raise TokenError("token access claim is malformed")
        result.append(Access(Resource(kind, name), frozenset(actions)))
    return result
