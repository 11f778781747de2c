"""The signing keys of a federated issuer: its JWKS, from OpenID discovery, a URL or a file.

Each JWK becomes a ``jwt.PyJWK``, which knows the one algorithm its key may verify: the
JWK's own ``alg`` if it gives one, else the key type's (RS256 for RSA, ES256/384/512 by
curve, EdDSA for Ed25519). Only asymmetric signature algorithms are kept: an ``oct`` key
(HMAC) or an ``alg`` outside :data:`ALLOWED_ALGORITHMS` is skipped, so neither ``none``
nor HS256 keyed with the public JWKS can ever verify. RSA keys must have 2048 bits.

Fetched sets are cached; a ``kid`` they lack starts one background fetch (discovery, then
the ``jwks_uri`` it names, which must be https, or http on loopback with ``jwksinsecure``),
at most once per ``refetch_interval``; the fetch at start does not count, so a key the
issuer adds just after it is still found. A file is read at start and again, when a token
names a kid it lacks, if its modification time changed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from hatchway.auth.tokens.errors import TokenError
from hatchway.auth.tokens.remote import (
    JWKS_REFETCH_INTERVAL,
    JWKS_TIMEOUT,
    KeysRefreshing,
    RemoteKeySet,
)
from hatchway.config.identity_federation import FederationEntry, is_url
from hatchway.config.model import jwks_url_problem

log = logging.getLogger("hatchway.auth.federation")

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_RSA_BITS = 2048
MAX_AGE = 3600.0  # fetched keys are fetched again in the background after this long
_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
NO_KID = ""  # a key the JWKS gives no kid (usable only by a token without one, if alone)


def jwks_keys(document: object) -> dict[str, jwt.PyJWK]:
    """kid -> key for each usable signature key of a JWKS document."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document: expected an object with a keys list")  # noqa: TRY004
    keys: dict[str, jwt.PyJWK] = {}
    for index, entry in enumerate(document["keys"]):
        key = _usable(index, entry)
        if key is None:
            continue
        kid = entry.get("kid")
        keys[kid if isinstance(kid, str) and kid else NO_KID] = key
    return keys


def _usable(index: int, entry: object) -> jwt.PyJWK | None:
    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
        return None
    if entry.get("kty") not in _KEY_TYPES:
        log.warning("skipping JWKS key #%d: not an RSA, EC or OKP public key", index)
        return None
    alg = entry.get("alg")
    if alg is not None and alg not in ALLOWED_ALGORITHMS:
        log.warning("skipping JWKS key #%d: algorithm %.20r is not allowed", index, alg)
        return None
    try:
        key = jwt.PyJWK(entry)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        log.warning("skipping JWKS key #%d: not a usable public key", index)
        return None
    if key.algorithm_name not in ALLOWED_ALGORITHMS:
        log.warning("skipping JWKS key #%d: algorithm %s is not allowed", index, key.algorithm_name)
        return None
    if hasattr(key.key, "private_bytes"):
        log.warning("skipping JWKS key #%d: a private key has no place in a JWKS", index)
        return None
    if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
        log.warning("skipping JWKS key #%d: RSA keys need %d bits", index, MIN_RSA_BITS)
        return None
    return key


def pick(keys: Mapping[str, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    """The key a token names; a token without a kid may use the only key there is."""
    if kid:
        return keys.get(kid)
    return next(iter(keys.values())) if len(keys) == 1 else None


class IssuerKeys(Protocol):
    @property
    def keys(self) -> Mapping[str, jwt.PyJWK]:
        """kid -> key; a new mapping each time the keys are loaded again."""
        ...

    def start(self) -> object:
        """Begin loading (in the background where that means the network)."""
        ...

    def resolve(self, kid: str | None) -> jwt.PyJWK:
        """The key for ``kid``; :class:`TokenError` if unknown, or :class:`KeysRefreshing`
        with a fetch to wait for that may bring it."""
        ...


class FileKeys:
    """A JWKS file (air-gapped clusters): read at start, reread when it changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime = self._stat()
        self.keys = self._load()

    def _stat(self) -> int:
        return os.stat(self.path).st_mtime_ns

    def _load(self) -> dict[str, jwt.PyJWK]:
        return jwks_keys(json.loads(self.path.read_text(encoding="utf-8")))

    def start(self) -> None:
        return None

    def resolve(self, kid: str | None) -> jwt.PyJWK:
        key = pick(self.keys, kid)
        if key is None and self._reload():
            key = pick(self.keys, kid)
        if key is None:
            raise TokenError("token is signed by an unknown key")
        return key

    def _reload(self) -> bool:
        with self._lock:
            try:
                mtime = self._stat()
                if mtime == self._mtime:
                    return False
                self.keys, self._mtime = self._load(), mtime
            except (OSError, ValueError) as exc:
                log.warning("cannot reread JWKS file %s: %s", self.path, exc)
                return False
            return True


class RemoteKeys(RemoteKeySet[jwt.PyJWK]):
    """A JWKS URL, or OpenID discovery (``issuer`` given) that names the JWKS URL."""

    def __init__(
        self,
        url: str,
        *,
        issuer: str | None = None,
        insecure: bool = False,
        timeout: float = JWKS_TIMEOUT,
        refetch_interval: float = JWKS_REFETCH_INTERVAL,
        max_age: float = MAX_AGE,
    ) -> None:
        super().__init__(
            url, jwks_keys, insecure=insecure, timeout=timeout, refetch_interval=refetch_interval
        )
        self.issuer = issuer
        self.max_age = max_age

    def _document(self) -> object:
        if self.issuer is None:
            return self._get_json(self.url)
        discovery = self._get_json(self.url)
        if not isinstance(discovery, dict):
            raise ValueError("the OpenID configuration is not a JSON object")  # noqa: TRY004
        # OpenID Connect Discovery 1.0, section 4.3: it must name the issuer we asked.
        if discovery.get("issuer") != self.issuer:
            raise ValueError("the OpenID configuration names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the OpenID configuration has no jwks_uri")  # noqa: TRY004
        problem = jwks_url_problem(jwks_uri, insecure=self._insecure)
        if problem is not None:
            raise ValueError(f"its jwks_uri is refused: {problem}")
        return self._get_json(jwks_uri)

    def start(self, *, counts: bool = False) -> Future[None]:
        return super().start(counts=counts)

    def resolve(self, kid: str | None) -> jwt.PyJWK:
        key = pick(self.keys, kid)
        if key is not None:
            if self.fetched_at is not None and time.monotonic() - self.fetched_at > self.max_age:
                self.refetch()  # in the background: withdrawn keys go, the token waits for nothing
            return key
        pending = self.refetch()
        if pending is not None:
            raise KeysRefreshing(pending, self.timeout)
        raise TokenError("token is signed by an unknown key")


def issuer_keys(entry: FederationEntry) -> IssuerKeys:
    """The key set an entry names (ValueError/OSError for a file that cannot be read)."""
    if entry.jwks is None:
        return RemoteKeys(entry.discovery_url, issuer=entry.issuer, insecure=entry.jwksinsecure)
    if is_url(entry.jwks):
        return RemoteKeys(entry.jwks, insecure=entry.jwksinsecure)
    try:
        return FileKeys(Path(entry.jwks))
    except OSError as exc:
        raise ValueError(f"cannot read JWKS file {entry.jwks}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"JWKS file {entry.jwks}: {exc}") from None
