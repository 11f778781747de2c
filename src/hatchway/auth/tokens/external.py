"""Trust in tokens minted by another server (a docker_auth-style auth server).

Accepts what distribution accepts, from the same configuration: a ``kid`` that names a
trusted key (its RFC 7638 thumbprint, its docker/libtrust key ID, or the ``kid`` a JWKS
gives it), or an ``x5c`` chain whose leaf is, or chains up to, a bundle certificate. A
token's own ``jwk`` header, and an ``x5c`` that chains to nothing we trust, count for
nothing: they would let anyone sign. Chains are checked by ``cryptography``'s RFC 5280
path validation, never by hand: only CA certificates may issue (see ``_CA_POLICY``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509 import UnsupportedGeneralNameType
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from hatchway.auth.tokens.errors import TokenError
from hatchway.auth.tokens.jwk import (
    VerificationKey,
    algorithm_for,
    certificate_key,
    key_from_jwk,
    libtrust_key_id,
    thumbprint,
    x5c_certificate,
)
from hatchway.auth.tokens.jwt import TokenVerifier
from hatchway.auth.tokens.remote import (
    JWKS_REFETCH_INTERVAL,
    JWKS_TIMEOUT,
    KeysRefreshing,
    RemoteKeySet,
)

log = logging.getLogger("hatchway.auth.tokens")

MAX_CHAIN = 8


def jwks_keys(document: object) -> dict[str, VerificationKey]:
    """kid -> key for each usable signing key of a JWKS; each also under its thumbprint."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document: expected an object with a keys list")  # noqa: TRY004
    keys: dict[str, VerificationKey] = {}
    for index, entry in enumerate(document["keys"]):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = key_from_jwk(entry)
        except ValueError:
            log.warning("skipping JWKS key #%d: not a usable public key", index)
            continue
        alg = algorithm_for(key)
        if alg is None or entry.get("alg", alg) != alg:
            log.warning("skipping JWKS key #%d: not an ES256 or RS256 key", index)
            continue
        kid = entry.get("kid")
        if isinstance(kid, str) and kid:
            keys[kid] = key
        keys.setdefault(thumbprint(key), key)
    return keys


def bundle_keys(certificates: Sequence[x509.Certificate]) -> dict[str, VerificationKey]:
    """Each bundle certificate's key under its RFC 7638 thumbprint and its libtrust key ID."""
    keys: dict[str, VerificationKey] = {}
    for cert in certificates:
        key = certificate_key(cert)
        if key is not None:
            keys[thumbprint(key)] = key
            keys[libtrust_key_id(key)] = key
    return keys


class TrustedKeys:
    """A :class:`KeySource` for an external issuer: bundle certificates and/or a JWKS."""

    def __init__(
        self,
        *,
        certificates: Sequence[x509.Certificate] = (),
        jwks: Mapping[str, object] | None = None,
        jwks_url: str | None = None,
        jwks_insecure: bool = False,
        timeout: float = JWKS_TIMEOUT,
        refetch_interval: float = JWKS_REFETCH_INTERVAL,
    ) -> None:
        self._roots = list(certificates)
        self._store = Store(self._roots) if self._roots else None
        self._keys = bundle_keys(self._roots) | (jwks_keys(jwks) if jwks is not None else {})
        self.remote: RemoteKeySet[VerificationKey] | None = (
            RemoteKeySet(
                jwks_url,
                jwks_keys,
                insecure=jwks_insecure,
                timeout=timeout,
                refetch_interval=refetch_interval,
            )
            if jwks_url is not None
            else None
        )

    def resolve(self, header: Mapping[str, object]) -> VerificationKey:
        kid = header.get("kid")
        if isinstance(kid, str) and kid:
            key = self._keys.get(kid) or (self.remote.keys.get(kid) if self.remote else None)
            if key is not None:
                return key
        x5c = header.get("x5c")
        if x5c is not None and self._store is not None:
            return self._chain_key(x5c, self._store)
        if isinstance(kid, str) and kid and self.remote is not None:
            # Perhaps the issuer rotated: fetch its JWKS again, in the background.
            pending = self.remote.refetch()
            if pending is not None:
                raise KeysRefreshing(pending, self.remote.timeout)
        raise TokenError("token is signed by an unknown key")

    def refresh(self) -> Future[None] | None:
        """Start fetching the JWKS URL (at start, so the first requests find its keys)."""
        return self.remote.start() if self.remote is not None else None

    @staticmethod
    def _chain_key(x5c: object, store: Store) -> VerificationKey:
        if not isinstance(x5c, list) or not x5c or len(x5c) > MAX_CHAIN:
            raise TokenError("token certificate chain is malformed")
        try:
            chain = [x5c_certificate(entry) for entry in x5c]
        except ValueError:
            raise TokenError("token certificate chain is malformed") from None
        now = datetime.now(UTC)
        if not chain[0].not_valid_before_utc <= now <= chain[0].not_valid_after_utc:
            raise TokenError("token certificate is expired or not yet valid")
        verifier = (
            PolicyBuilder()
            .store(store)
            .time(now)
            .max_chain_depth(MAX_CHAIN)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        try:
            verifier.verify(chain[0], chain[1:])
        except (VerificationError, UnsupportedGeneralNameType, ValueError):
            raise TokenError("token certificate chain is not trusted") from None
        leaf = certificate_key(chain[0])
        if leaf is None:
            raise TokenError("token certificate key type is not supported")
        return leaf


def _may_sign_certificates(
    policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    """A CA certificate with a KeyUsage extension must allow certificate signing."""
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("the issuing certificate's KeyUsage lacks keyCertSign")


# Path validation as RFC 5280 (and Go, for distribution's intermediates) has it, not the
# web PKI's profile: every issuing certificate, the bundle's roots included, must have
# basicConstraints CA:TRUE (path lengths honoured) and keyCertSign if it has a KeyUsage.
# The token signer's own certificate may carry any extensions (Go checks none with
# ExtKeyUsageAny). A leaf that is itself in the bundle needs no chain at all.
_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _may_sign_certificates)
)


def external_verifier(
    issuer: str,
    audience: str,
    *,
    rootcertbundle: Path | None = None,
    jwks: str | None = None,
    jwks_insecure: bool = False,
    leeway: int = 30,
) -> TokenVerifier:
    """A verifier for tokens of another issuer, configured as distribution's ``auth.token``:
    ``rootcertbundle`` (PEM certificates) and/or ``jwks`` (a file path or an https URL;
    http only for a loopback issuer with ``jwks_insecure``).
    """
    if rootcertbundle is None and jwks is None:
        raise ValueError("an external token issuer needs a rootcertbundle or a jwks")
    certificates: list[x509.Certificate] = []
    if rootcertbundle is not None:
        certificates = x509.load_pem_x509_certificates(Path(rootcertbundle).read_bytes())
    document: Mapping[str, object] | None = None
    url = None
    if jwks is not None and jwks.startswith(("http://", "https://")):
        url = jwks
    elif jwks is not None:
        document = json.loads(Path(jwks).read_text(encoding="utf-8"))
    keys = TrustedKeys(
        certificates=certificates, jwks=document, jwks_url=url, jwks_insecure=jwks_insecure
    )
    keys.refresh()  # in the background; requests that need it wait for it without blocking
    return TokenVerifier(keys, issuer, audience, leeway)
