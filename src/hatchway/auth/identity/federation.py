"""Workload identity: is this ID token (a CI job's, a pod's) one a federation entry trusts?

A token is routed by its ``iss`` (read before anything is trusted, only to pick the
issuer's keys and entries), then verified in one ``jwt.decode`` call: the signature with
the issuer's JWK named by ``kid`` and only that JWK's algorithm (so never ``none``, never
HS*), ``iss`` exactly, ``aud`` present and one of the entries' audiences, ``exp`` and
``sub`` and ``iat`` present, ``exp``/``nbf``/``iat`` with :data:`LEEWAY` seconds at most.
The first entry of that issuer whose audience the token names and whose ``match`` globs
all hold is the identity's entry.

Globs are the access rules' (``*`` crosses ``/``, ``?`` one character). A claim name
reaches into objects with dots (``kubernetes.io.namespace``: the longest key that exists
is taken first, since claim names may hold dots themselves); a claim that is absent, an
object, or null matches nothing, not even ``*``; a list matches if one of its strings
does; numbers and booleans match as JSON writes them (``true``, ``42``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import jwt

from hatchway.auth.identity.federation_keys import ALLOWED_ALGORITHMS, IssuerKeys, issuer_keys
from hatchway.auth.policy.rules import compile_glob
from hatchway.auth.tokens.errors import TokenError
from hatchway.auth.tokens.jwt import MAX_TOKEN_LENGTH
from hatchway.auth.tokens.remote import KeysRefreshing
from hatchway.config.identity_federation import FederationEntry

log = logging.getLogger("hatchway.auth.federation")

LEEWAY = 60  # seconds of clock skew allowed on exp, nbf and iat (no more)
CACHE_TTL = 60.0  # a verified token string is verified again after this long
CACHE_SIZE = 4096
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat")
_MAX_SHOWN = 200  # how much of a claimed issuer or subject the audit trail keeps


@dataclass(frozen=True, slots=True)
class Trusted:
    """A configured entry, numbered as in the file."""

    entry: FederationEntry
    label: str


@dataclass(frozen=True, slots=True)
class FederatedIdentity:
    """A verified ID token and the entry it matched."""

    trusted: Trusted
    issuer: str
    subject: str
    expires_at: int  # the ID token's exp (epoch seconds)
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def account(self) -> str:
        return self.trusted.entry.account


class FederationRefused(Exception):
    """The token is not accepted; ``reason`` is safe to show and never echoes the token."""

    def __init__(
        self,
        reason: str,
        *,
        issuer: str | None = None,
        subject: str | None = None,
        entry: Trusted | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        # What the token claims (unverified), for the audit trail only.
        self.issuer = issuer
        self.subject = subject
        self.entry = entry


def _segment(part: str) -> dict[str, Any] | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The header and claims of a JWT-shaped string, unverified: only to route it to its
    issuer's keys and entries (``jwt.decode`` below checks everything, signature first)."""
    if (
        not isinstance(token, str)
        or not token.startswith("eyJ")
        or len(token) > MAX_TOKEN_LENGTH
        or token.count(".") != 2
    ):
        return None
    head, payload, _ = token.split(".")
    header, claims = _segment(head), _segment(payload)
    return (header, claims) if header is not None and claims is not None else None


def _claimed(value: object) -> str | None:
    return value[:_MAX_SHOWN] if isinstance(value, str) else None


def _lookup(claims: Mapping[str, Any], name: str) -> object:
    if name in claims:
        return claims[name]
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        inner = claims.get(".".join(parts[:cut]))
        if isinstance(inner, Mapping):
            return _lookup(inner, ".".join(parts[cut:]))
    return None


def _values(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool | int | float):
        return [json.dumps(value)]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def claims_match(claims: Mapping[str, Any], match: Mapping[str, str]) -> bool:
    """Every ``claim: glob`` of ``match`` holds for ``claims``."""
    for name, glob in match.items():
        pattern = compile_glob(glob)
        if not any(pattern.match(v) for v in _values(_lookup(claims, name))):
            return False
    return True


def _audiences(aud: object) -> list[str]:
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _reason(exc: jwt.InvalidTokenError) -> str:
    # Our own wording: never echoes claim values back.
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the ID token has expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the ID token is not valid yet"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the ID token is for another audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the ID token is from an untrusted issuer"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the ID token lacks the {exc.claim} claim"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the ID token's signature is invalid"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "the ID token's algorithm is not allowed"
    return "the ID token is malformed or invalid"


class Federation:
    """The configured entries and their issuers' keys (one key set per issuer)."""

    def __init__(
        self,
        entries: Sequence[FederationEntry],
        *,
        keys: Callable[[FederationEntry], IssuerKeys] = issuer_keys,
    ) -> None:
        self.entries = [Trusted(e, e.label(i)) for i, e in enumerate(entries)]
        self._by_issuer: dict[str, list[Trusted]] = {}
        self._keys: dict[str, IssuerKeys] = {}
        self._cache: dict[str, tuple[FederatedIdentity, Mapping[str, jwt.PyJWK], float]] = {}
        for trusted in self.entries:
            issuer = trusted.entry.issuer
            self._by_issuer.setdefault(issuer, []).append(trusted)
            if issuer not in self._keys:
                self._keys[issuer] = keys(trusted.entry)

    def start(self) -> None:
        """Begin fetching every issuer's keys, in the background."""
        for keys in self._keys.values():
            keys.start()

    def candidates(self, issuer: str) -> list[Trusted]:
        return self._by_issuer.get(issuer, [])

    def issuer_of(self, token: str) -> str | None:
        """The configured issuer a JWT-shaped ``token`` claims to come from, or None.

        Unverified: it only tells a password from an ID token and picks the keys.
        """
        hit = self._cache.get(token)
        if hit is not None:  # verified lately: the same job logging in again
            return hit[0].issuer
        peeked = _peek(token)
        issuer = peeked[1].get("iss") if peeked is not None else None
        return issuer if isinstance(issuer, str) and issuer in self._by_issuer else None

    def verify(self, token: str, *, wait: bool = True) -> FederatedIdentity:
        """The identity ``token`` proves, or :class:`FederationRefused`. Blocks up to the
        key fetch timeout if the issuer's keys must be fetched (call it in a thread).

        The answer for an exact token string is remembered (a CI job sends its one ID
        token with every login) while it is unexpired, for at most :data:`CACHE_TTL`,
        and only while its issuer's key set is the one that verified it.
        """
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None:
            identity, keys, checked = hit
            if (
                now - checked < CACHE_TTL
                and identity.expires_at + LEEWAY > now
                and self._keys[identity.issuer].keys is keys
            ):
                return identity
            self._cache.pop(token, None)
        identity, keys = self._verify(token, wait=wait)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = (identity, keys, now)
        return identity

    def _verify(
        self, token: str, *, wait: bool
    ) -> tuple[FederatedIdentity, Mapping[str, jwt.PyJWK]]:
        peeked = _peek(token)
        if peeked is None:
            raise FederationRefused("the ID token is malformed")
        header, unverified = peeked
        issuer = unverified.get("iss")
        claimed: dict[str, Any] = {
            "issuer": _claimed(issuer),
            "subject": _claimed(unverified.get("sub")),
        }
        if not isinstance(issuer, str) or issuer not in self._by_issuer:
            raise FederationRefused("the ID token is from an untrusted issuer", **claimed)
        # The entry the token would match if it were genuine: whose robot it tried to be.
        claimed["entry"] = next(
            (t for t in self._by_issuer[issuer] if claims_match(unverified, t.entry.match)),
            None,
        )
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGORITHMS:
            raise FederationRefused("the ID token's algorithm is not allowed", **claimed)
        if kid is not None and not isinstance(kid, str):
            raise FederationRefused("the ID token is malformed", **claimed)
        keys = self._keys[issuer]
        try:
            key = self._key(keys, kid, wait=wait)
        except TokenError:
            raise FederationRefused("the ID token is signed by an unknown key", **claimed) from None
        verified_with = keys.keys
        if key.algorithm_name != alg:
            raise FederationRefused("the ID token's algorithm does not match its key", **claimed)
        trusted = self._by_issuer[issuer]
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=[t.entry.audience for t in trusted],
                issuer=issuer,
                leeway=LEEWAY,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.InvalidTokenError as exc:
            raise FederationRefused(_reason(exc), **claimed) from None
        subject, expires = claims["sub"], claims["exp"]
        if not isinstance(subject, str) or not isinstance(expires, int):
            raise FederationRefused("the ID token is malformed", **claimed)
        audiences = _audiences(claims["aud"])
        for candidate in trusted:
            entry = candidate.entry
            if entry.audience in audiences and claims_match(claims, entry.match):
                identity = FederatedIdentity(candidate, issuer, subject, expires, claims)
                return identity, verified_with
        raise FederationRefused("the ID token's claims match no federation entry", **claimed)

    @staticmethod
    def _key(keys: IssuerKeys, kid: str | None, *, wait: bool) -> jwt.PyJWK:
        try:
            return keys.resolve(kid)
        except KeysRefreshing as pending:
            if not wait:
                raise
            with contextlib.suppress(FutureTimeout):
                pending.refresh.result(timeout=pending.wait)
            return keys.resolve(kid)  # once more; a second unknown kid is not refetched
