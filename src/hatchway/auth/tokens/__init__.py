"""Registry bearer tokens: signing keys (rotation, JWKS, certificates), mint and verify.

No web-framework imports: the HTTP layer serves ``KeyStore.jwks()`` and calls
``TokenIssuer.mint`` / ``TokenVerifier.verify``.
"""

from hatchway.auth.tokens.errors import TokenError
from hatchway.auth.tokens.external import TrustedKeys, external_verifier
from hatchway.auth.tokens.jwk import VerificationKey, libtrust_key_id, thumbprint
from hatchway.auth.tokens.jwt import Claims, IssuedToken, KeySource, TokenIssuer, TokenVerifier
from hatchway.auth.tokens.keys import KeyInfo, KeyState, KeyStore, SigningKey, key_directory

__all__ = [
    "Claims",
    "IssuedToken",
    "KeyInfo",
    "KeySource",
    "KeyState",
    "KeyStore",
    "SigningKey",
    "TokenError",
    "TokenIssuer",
    "TokenVerifier",
    "TrustedKeys",
    "VerificationKey",
    "external_verifier",
    "key_directory",
    "libtrust_key_id",
    "thumbprint",
]
