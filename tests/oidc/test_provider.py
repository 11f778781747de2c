"""ID token verification (authlib's CodeIDToken over joserfc's signature check) against a
local issuer on loopback whose keys the test makes and rotates: the attacks a forged or
misdirected token would try are refused, and an unknown ``kid`` refetches the JWKS, at
most once per interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import jwt as pyjwt
import pytest

from hatchway.auth.identity.oidcclient import Provider, ProviderMetadata, ProviderRefused
from hatchway.config.identity_oidc import OidcConfig
from tests.support.oidc_issuer import JWKS_PATH, LocalIssuer, local_issuer, new_key

NONCE = "n-0123456789abcdef0123456789abcdef"


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as found:
        yield found


def provider_for(issuer: LocalIssuer, **options: Any) -> Provider:
    config = OidcConfig(issuer=issuer.url, clientid="hatchway", clientsecretfile="/unused")
    provider = Provider(config, "secret", **options)
    # The local issuer serves keys, not the code flow's endpoints: its metadata as
    # discovery would give it, set directly.
    provider._metadata = (
        time.monotonic(),
        ProviderMetadata(
            issuer=issuer.url,
            authorization_endpoint=issuer.url + "/auth",
            token_endpoint=issuer.url + "/token",
            jwks_uri=issuer.url + JWKS_PATH,
            userinfo_endpoint=None,
            scopes_supported=frozenset({"openid"}),
            algorithms=("RS256", "ES256"),
        ),
    )
    return provider


def id_token(issuer: LocalIssuer, **claims: Any) -> str:
    base: dict[str, Any] = {"sub": "user-1", "aud": "hatchway", "nonce": NONCE}
    key = claims.pop("key", None)
    headers = claims.pop("headers", None)
    lifetime = claims.pop("lifetime", 300)
    return issuer.mint({**base, **claims}, key=key, headers=headers, lifetime=lifetime)


def verify(provider: Provider, token: str, nonce: str = NONCE) -> dict[str, Any]:
    return asyncio.run(provider.verify_id_token(token, nonce=nonce))


def test_a_good_token_verifies(issuer: LocalIssuer) -> None:
    claims = verify(provider_for(issuer), id_token(issuer, preferred_username="u"))
    assert claims["sub"] == "user-1"
    assert claims["preferred_username"] == "u"


@pytest.mark.parametrize(
    ("claims", "nonce"),
    [
        ({"aud": "another-client"}, NONCE),
        ({"aud": ["another-client", "third"]}, NONCE),
        ({"iss": "https://elsewhere.example"}, NONCE),
        ({"lifetime": -120}, NONCE),  # expired, beyond the 60 s leeway
        ({}, "another-nonce"),
        ({"nonce": None}, NONCE),  # no nonce at all
        ({"sub": None}, NONCE),
    ],
)
def test_misdirected_or_stale_tokens_are_refused(
    issuer: LocalIssuer, claims: dict[str, Any], nonce: str
) -> None:
    with pytest.raises(ProviderRefused, match="ID token"):
        verify(provider_for(issuer), id_token(issuer, **claims), nonce)


def test_forged_signatures_are_refused(issuer: LocalIssuer) -> None:
    provider = provider_for(issuer)
    good = id_token(issuer)
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload}.{signature[::-1]}"
    with pytest.raises(ProviderRefused):
        verify(provider, tampered)
    claims = pyjwt.decode(good, options={"verify_signature": False})
    none = pyjwt.encode(claims, "", algorithm="none", headers={"kid": issuer.signing.kid})
    with pytest.raises(ProviderRefused):
        verify(provider, none)
    # HS256 "signed" with the public key as the secret (the classic confusion attack).
    public = issuer.jwks()["keys"][0]["n"].encode()
    hs = pyjwt.encode(claims, public, algorithm="HS256", headers={"kid": issuer.signing.kid})
    with pytest.raises(ProviderRefused):
        verify(provider, hs)
    # A key the issuer never published, with a kid it does.
    stranger = new_key(kid=issuer.signing.kid)
    with pytest.raises(ProviderRefused):
        verify(provider, id_token(issuer, key=stranger))


def test_an_unknown_kid_refetches_the_keys(issuer: LocalIssuer) -> None:
    provider = provider_for(issuer, jwks_refetch=0)
    verify(provider, id_token(issuer))
    assert issuer.hits[JWKS_PATH] == 1
    verify(provider, id_token(issuer))
    assert issuer.hits[JWKS_PATH] == 1  # cached
    issuer.rotate()  # the provider signs with a new key from now on
    assert verify(provider, id_token(issuer))["sub"] == "user-1"
    assert issuer.hits[JWKS_PATH] == 2


def test_refetches_are_rate_limited(issuer: LocalIssuer) -> None:
    provider = provider_for(issuer)  # at most once a minute
    verify(provider, id_token(issuer))
    assert issuer.hits[JWKS_PATH] == 1
    for _ in range(5):  # tokens under kids nobody published: no fetch storm
        with pytest.raises(ProviderRefused, match="unknown key"):
            verify(provider, id_token(issuer, key=new_key()))
    assert issuer.hits[JWKS_PATH] == 1
