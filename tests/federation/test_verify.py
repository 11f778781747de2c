"""ID token verification against a local issuer (discovery + JWKS over loopback): what is
accepted, every attack that must be refused, key rotation and a JWKS file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from hatchway.auth.identity.federation import Federation, FederationRefused, claims_match
from hatchway.auth.identity.federation_keys import jwks_keys
from hatchway.config.identity_federation import FederationEntry
from tests.support.oidc_issuer import DISCOVERY, JWKS_PATH, LocalIssuer, local_issuer, new_key


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as running:
        yield running


def entry(issuer: LocalIssuer, **fields: Any) -> FederationEntry:
    data: dict[str, Any] = {
        "issuer": issuer.url,
        "audience": "hatchway",
        "jwksinsecure": True,
        "match": {"repository": "acme/*", "ref": "refs/heads/main"},
        "account": "ci-acme",
        **fields,
    }
    return FederationEntry.model_validate(data)


def federation(*entries: FederationEntry) -> Federation:
    fed = Federation(list(entries))
    fed.start()
    return fed


def refused(fed: Federation, token: str) -> str:
    with pytest.raises(FederationRefused) as info:
        fed.verify(token)
    assert token not in str(info.value)
    return info.value.reason


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWT made by hand (PyJWT refuses to use a public key as an HMAC secret)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_github_token_is_accepted_and_matched(issuer: LocalIssuer) -> None:
    fed = federation(entry(issuer))
    identity = fed.verify(issuer.github())
    assert identity.account == "ci-acme"
    assert identity.subject == "repo:acme/app:ref:refs/heads/main"
    assert identity.issuer == issuer.url
    assert identity.trusted.label == "federation[0]"
    # The issuer's keys come from discovery, fetched once.
    assert issuer.hits[DISCOVERY] == 1
    assert issuer.hits[JWKS_PATH] == 1


def test_first_matching_entry_wins_and_audience_lists_work(issuer: LocalIssuer) -> None:
    fed = federation(
        entry(issuer, match={"repository": "acme/infra"}, account="ci-infra", name="infra"),
        entry(issuer, match={"repository": "acme/*"}, account="ci-acme", name="acme"),
        entry(issuer, audience="other", match={}, account="ci-other", name="other"),
    )
    assert fed.verify(issuer.github(repository="acme/infra")).account == "ci-infra"
    assert fed.verify(issuer.github(repository="acme/app")).trusted.label == "acme"
    assert fed.verify(issuer.github(repository="zeta/app", audience="other")).account == "ci-other"
    both = issuer.github(repository="zeta/app", audience=["someone", "other"])
    assert fed.verify(both).account == "ci-other"


def test_kubernetes_token_with_nested_claims(issuer: LocalIssuer) -> None:
    fed = federation(
        entry(
            issuer,
            match={
                "sub": "system:serviceaccount:ci:*",
                "kubernetes.io.namespace": "ci",
                "kubernetes.io.serviceaccount.name": "builder",
            },
            account="k8s-builder",
        )
    )
    assert fed.verify(issuer.kubernetes()).account == "k8s-builder"
    reason = refused(fed, issuer.kubernetes(serviceaccount="intruder"))
    assert reason == "the ID token's claims match no federation entry"
    assert refused(fed, issuer.kubernetes(namespace="prod")) == reason


def test_claim_globs() -> None:
    claims = {
        "repository": "acme/tools/ci",
        "ref": "refs/heads/main",
        "flag": True,
        "n": 7,
        "groups": ["dev", "ops"],
        "obj": {"a.b": {"c": "x"}},
        "empty": None,
    }
    assert claims_match(claims, {"repository": "acme/*"})  # * crosses /
    assert claims_match(claims, {"ref": "refs/heads/ma?n"})
    assert not claims_match(claims, {"ref": "refs/heads/main-*"})
    assert claims_match(claims, {"flag": "true", "n": "7", "groups": "op*"})
    assert claims_match(claims, {"obj.a.b.c": "x"})
    assert not claims_match(claims, {"missing": "*"})  # absent matches nothing
    assert not claims_match(claims, {"empty": "*"})
    assert not claims_match(claims, {"obj": "*"})  # an object is no string
    assert not claims_match(claims, {"repository": "[acme]/*"})  # brackets are literal
    assert claims_match({"r": "[x]"}, {"r": "[x]"})


def test_alg_none_is_refused(issuer: LocalIssuer) -> None:
    fed = federation(entry(issuer))
    good = jwt.decode(issuer.github(), options={"verify_signature": False})
    unsigned = jwt.encode(good, "", algorithm="none", headers={"kid": issuer.signing.kid})
    assert refused(fed, unsigned) == "the ID token's algorithm is not allowed"
    stripped = issuer.github().rsplit(".", 1)[0] + "."
    assert refused(fed, stripped).startswith("the ID token")


def test_hs256_keyed_with_the_public_jwks_is_refused(issuer: LocalIssuer) -> None:
    fed = federation(entry(issuer))
    payload = jwt.decode(issuer.github(), options={"verify_signature": False})
    jwk = issuer.signing.public_jwk()
    pem = issuer.signing.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (json.dumps(jwk).encode(), json.dumps(issuer.jwks()).encode(), pem):
        forged = hand_signed({"alg": "HS256", "typ": "JWT", "kid": jwk["kid"]}, payload, secret)
        assert refused(fed, forged) == "the ID token's algorithm is not allowed"


def test_unknown_issuer_wrong_audience_and_missing_claims(issuer: LocalIssuer) -> None:
    fed = federation(entry(issuer))
    assert (
        refused(fed, issuer.github(claims={"iss": "https://token.actions.githubusercontent.com"}))
        == "the ID token is from an untrusted issuer"
    )
    assert refused(fed, issuer.github(audience="sigstore")) == (
        "the ID token is for another audience"
    )
    no_aud = issuer.mint({"sub": "repo:acme/app:ref:refs/heads/main", "repository": "acme/app"})
    assert refused(fed, no_aud) == "the ID token lacks the aud claim"
    assert refused(fed, issuer.github(claims={"sub": None})) == "the ID token lacks the sub claim"
    assert refused(fed, "not-a-jwt") == "the ID token is malformed"


def test_time_claims_with_at_most_a_minute_of_leeway(issuer: LocalIssuer) -> None:
    fed = federation(entry(issuer))
    now = int(time.time())
    assert refused(fed, issuer.github(claims={"exp": now - 90})) == "the ID token has expired"
    assert fed.verify(issuer.github(claims={"exp": now - 30})).expires_at == now - 30
    assert refused(fed, issuer.github(claims={"nbf": now + 90})) == (
        "the ID token is not valid yet"
    )
    assert refused(fed, issuer.github(claims={"iat": now + 90})) == (
        "the ID token is not valid yet"
    )
    fed.verify(issuer.github(claims={"nbf": now + 30, "iat": now + 30}))
    assert refused(fed, issuer.github(claims={"exp": None})) == "the ID token lacks the exp claim"


def test_kid_not_in_the_jwks_and_tampered_signature(issuer: LocalIssuer) -> None:
    fed = federation(entry(issuer))
    stranger = new_key()
    assert refused(fed, issuer.github(key=stranger)) == "the ID token is signed by an unknown key"
    # The issuer's kid, another key's signature.
    impostor = issuer.github(key=stranger, headers={"kid": issuer.signing.kid})
    assert refused(fed, impostor) == "the ID token's signature is invalid"
    header, payload, signature = issuer.github(repository="zeta/app").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["repository"] = "acme/app"
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert refused(fed, forged) == "the ID token's signature is invalid"
    # An ES256 token naming the issuer's RSA key.
    es = issuer.github(key=new_key("ES256"), headers={"kid": issuer.signing.kid})
    assert refused(fed, es) == "the ID token's algorithm does not match its key"


def test_claim_mismatch(issuer: LocalIssuer) -> None:
    fed = federation(entry(issuer))
    reason = "the ID token's claims match no federation entry"
    assert refused(fed, issuer.github(repository="evil/app")) == reason
    assert refused(fed, issuer.github(ref="refs/heads/feature")) == reason
    assert refused(fed, issuer.github(claims={"repository": None})) == reason


def test_rotation_fetches_a_new_kid_once_and_rate_limits_unknown_ones(
    issuer: LocalIssuer,
) -> None:
    fed = federation(entry(issuer))
    fed.verify(issuer.github())
    assert issuer.hits[JWKS_PATH] == 1
    issuer.rotate()
    for _ in range(3):  # the new key is fetched once (just after the start fetch, too)
        assert fed.verify(issuer.github()).account == "ci-acme"
    assert issuer.hits[JWKS_PATH] == 2
    stranger = new_key()
    for _ in range(5):  # within the minute: refused at once, no fetch
        assert refused(fed, issuer.github(key=stranger)) == (
            "the ID token is signed by an unknown key"
        )
    assert issuer.hits[JWKS_PATH] == 2
    assert issuer.hits[DISCOVERY] == 2


def test_es256_issuer(issuer: LocalIssuer) -> None:
    issuer.rotate("ES256")
    fed = federation(entry(issuer))
    assert fed.verify(issuer.github()).account == "ci-acme"


def test_discovery_naming_another_issuer_is_not_trusted(
    issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.discovery_issuer = "https://evil.example"
    fed = federation(entry(issuer))
    with caplog.at_level(logging.WARNING):
        assert refused(fed, issuer.github()) == "the ID token is signed by an unknown key"
    assert "names another issuer" in caplog.text
    assert issuer.hits[JWKS_PATH] == 0


def test_jwks_url_without_discovery(issuer: LocalIssuer) -> None:
    fed = federation(entry(issuer, jwks=issuer.url + JWKS_PATH))
    assert fed.verify(issuer.github()).account == "ci-acme"
    assert issuer.hits[DISCOVERY] == 0


def test_jwks_file_for_an_air_gapped_cluster(tmp_path: Path) -> None:
    cluster = LocalIssuer(url="https://kubernetes.default.svc.cluster.local", keys=[new_key()])
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(cluster.jwks()))
    fed = federation(
        FederationEntry(
            issuer=cluster.url,
            audience="hatchway",
            jwks=str(path),
            match={"sub": "system:serviceaccount:ci:builder"},
            account="k8s-builder",
        )
    )
    assert fed.verify(cluster.kubernetes()).account == "k8s-builder"
    rotated = cluster.rotate()
    token = cluster.kubernetes()
    assert refused(fed, token) == "the ID token is signed by an unknown key"
    path.write_text(json.dumps(cluster.jwks()))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert fed.verify(token).account == "k8s-builder"
    assert rotated.kid in cluster.jwks()["keys"][-1]["kid"]


def test_jwks_parsing_keeps_only_asymmetric_signature_keys() -> None:
    rsa_key, ec_key = new_key(), new_key("ES256")
    document = {
        "keys": [
            {"kty": "oct", "k": b64(b"secret"), "kid": "hmac", "alg": "HS256"},
            {**rsa_key.public_jwk(), "kid": "none", "alg": "none"},
            {**rsa_key.public_jwk(), "kid": "enc", "use": "enc"},
            {**rsa_key.public_jwk(), "kid": "rsa"},
            {**ec_key.public_jwk(), "kid": "ec"},
            {"kty": "RSA", "kid": "junk", "n": "AQAB", "e": 5},
        ]
    }
    keys = jwks_keys(document)
    assert sorted(keys) == ["ec", "rsa"]
    assert keys["rsa"].algorithm_name == "RS256"
    assert keys["ec"].algorithm_name == "ES256"
    with pytest.raises(ValueError, match="not a JWKS"):
        jwks_keys({"keys": "x"})
