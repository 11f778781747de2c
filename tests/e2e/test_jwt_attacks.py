"""Forged, tampered and misused bearer tokens against a real registry: every one is a 401
with a Bearer challenge that says why (``invalid_token``/``insufficient_scope``) and names
exactly the scope the request needs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support.authkit import (
    ADMIN,
    ADMIN_PASSWORD,
    SERVICE,
    ParsedChallenge,
    add_user,
    b64url,
    b64url_decode,
    challenge_of,
    get_token,
    jwt_header,
    jwt_payload,
    start_token_server,
)
from tests.support.images import make_image
from tests.support.oci import push_image
from tests.support.server import Server

PASSWORD = "jwt-Pw-0123"
TAGS = "/v2/alice/app/tags/list"
PULL_SCOPE = "repository:alice/app:pull"


@dataclass
class Target:
    server: Server
    kid: str
    key: ec.EllipticCurvePrivateKey  # the server's own signing key, read from its data dir
    token: str  # a valid token of alice for repository:alice/app:pull
    digest: str  # a manifest digest in alice/app (and bob/app)
    config_digest: str


def server_signing_key(server: Server) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """``<data>/keys/<activation>_<kid>.pem``: the PKCS#8 key, then its certificate."""
    (path,) = sorted((server.data / "keys").glob("*_*.pem"))
    kid = path.name.removesuffix(".pem").split("_", 1)[1]
    match = re.search(
        rb"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----\n", path.read_bytes(), re.S
    )
    assert match is not None
    key = serialization.load_pem_private_key(match.group(0), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return kid, key


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = start_token_server(tmp_path_factory.mktemp("jwt-attacks"))
    try:
        add_user(server, "alice", PASSWORD)
        image = make_image("jwt-attacks", layer_sizes=(512,))
        admin = get_token(
            server,
            ["repository:alice/app:pull,push", "repository:bob/app:pull,push"],
            auth=(ADMIN, ADMIN_PASSWORD),
        )
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {admin}"}
        ) as client:
            push_image(client, "alice/app", image, "1.0")
            push_image(client, "bob/app", image, "1.0")
        kid, key = server_signing_key(server)
        token = get_token(server, [PULL_SCOPE], auth=("alice", PASSWORD))
        assert jwt_header(token)["kid"] == kid
        yield Target(server, kid, key, token, image.manifest.digest, image.config.digest)
    finally:
        server.stop()


def bearer(target: Target, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, target.server.url + path, headers=headers, timeout=30, **kw)


def assert_challenge(
    target: Target, response: httpx.Response, scope: str | None, error: str | None
) -> ParsedChallenge:
    assert response.status_code == 401, (response.status_code, response.text)
    found = challenge_of(response)
    assert found.scheme == "Bearer", found
    assert found.params.get("realm") == target.server.url + "/auth/token", found
    assert found.params.get("service") == SERVICE, found
    assert found.params.get("scope") == scope, found
    assert found.params.get("error") == error, found
    if response.request.method != "HEAD":
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED", response.text
    return found


def assert_invalid(target: Target, token: str, reason: str) -> None:
    r = bearer(target, "GET", TAGS, token)
    assert_challenge(target, r, PULL_SCOPE, "invalid_token")
    message = r.json()["errors"][0]["message"]
    assert reason in message, message  # refused for the reason the forgery is about


def test_the_valid_token_works(target: Target) -> None:
    r = bearer(target, "GET", TAGS, target.token)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "alice/app", "tags": ["1.0"]}


# -- forgeries without the server's key ---------------------------------------------------


def attacker_ec_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A fresh P-256 key and its self-signed certificate as an ``x5c`` entry."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hatchway attacker")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return key, x5c


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    return f"{head}.{body}.{signature}"


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    signing_input = unsigned(header, payload)[:-1]
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def server_public_pems(target: Target) -> list[bytes]:
    """What an attacker can fetch: the public key (from the JWKS) as PEM, and the cert."""
    jwks = httpx.get(target.server.url + "/auth/jwks.json").json()
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == target.kid]
    public = jwt.PyJWK(jwk).key
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    cert = x509.load_der_x509_certificate(base64.b64decode(jwk["x5c"][0]))
    return [spki, spki.strip(), cert.public_bytes(serialization.Encoding.PEM)]


Forge = Callable[[Target], str]


def alg_none(alg: str) -> Forge:
    def forge(target: Target) -> str:
        header = {**jwt_header(target.token), "alg": alg}
        return unsigned(header, jwt_payload(target.token))

    return forge


def hs256_with_public_key(index: int) -> Forge:
    def forge(target: Target) -> str:
        header = {**jwt_header(target.token), "alg": "HS256"}
        return hs256(header, jwt_payload(target.token), server_public_pems(target)[index])

    return forge


def attacker_signed(*, kid: str | None, embed: str) -> Forge:
    """Signed with a key of the attacker's, naming ``kid`` ('server' for the real one)
    and carrying the attacker's certificate (``x5c``) or public key (``jwk``)."""

    def forge(target: Target) -> str:
        key, x5c = attacker_ec_key()
        headers: dict[str, Any] = {"typ": "JWT"}
        if kid is not None:
            headers["kid"] = target.kid if kid == "server" else kid
        if embed == "x5c":
            headers["x5c"] = [x5c]
        elif embed == "jwk":
            headers["jwk"] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        return jwt.encode(jwt_payload(target.token), key, algorithm="ES256", headers=headers)

    return forge


def rs256_with_server_kid(target: Target) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {"typ": "JWT", "kid": target.kid}
    return jwt.encode(jwt_payload(target.token), key, algorithm="RS256", headers=headers)


def flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def bad_signature(target: Target) -> str:
    head, body, sig = target.token.split(".")
    forged = flip(sig, len(sig) // 2)
    assert b64url_decode(forged) != b64url_decode(sig)
    return f"{head}.{body}.{forged}"


def tampered_payload(change: Callable[[dict[str, Any]], None]) -> Forge:
    def forge(target: Target) -> str:
        head, _, sig = target.token.split(".")
        payload = jwt_payload(target.token)
        change(payload)
        body = b64url(json.dumps(payload, separators=(",", ":")).encode())
        return f"{head}.{body}.{sig}"

    return forge


def _more_actions(payload: dict[str, Any]) -> None:
    payload["access"][0]["actions"] = ["pull", "push", "delete"]


def _longer_life(payload: dict[str, Any]) -> None:
    payload["exp"] += 86400


def _admin(payload: dict[str, Any]) -> None:
    payload["sub"] = ADMIN


# name -> (forgery, what the registry says is wrong with it)
FORGERIES: dict[str, tuple[Forge, str]] = {
    "alg-none": (alg_none("none"), "algorithm is not allowed"),
    "alg-None": (alg_none("None"), "algorithm is not allowed"),
    "alg-NONE": (alg_none("NONE"), "algorithm is not allowed"),
    "hs256-public-key-pem": (hs256_with_public_key(0), "algorithm is not allowed"),
    "hs256-public-key-pem-stripped": (hs256_with_public_key(1), "algorithm is not allowed"),
    "hs256-certificate-pem": (hs256_with_public_key(2), "algorithm is not allowed"),
    "unknown-kid-own-x5c": (attacker_signed(kid="attacker-key", embed="x5c"), "unknown key"),
    "no-kid-own-x5c": (attacker_signed(kid=None, embed="x5c"), "names no signing key"),
    "no-kid-own-jwk": (attacker_signed(kid=None, embed="jwk"), "names no signing key"),
    "server-kid-attacker-key": (attacker_signed(kid="server", embed="x5c"), "signature is invalid"),
    "rs256-server-kid": (rs256_with_server_kid, "does not match its key"),
    "bad-signature": (bad_signature, "signature is invalid"),
    "no-signature": (lambda t: t.token.rsplit(".", 1)[0] + ".", "signature is invalid"),
    "two-parts": (lambda t: t.token.rsplit(".", 1)[0], "malformed"),
    "more-actions": (tampered_payload(_more_actions), "signature is invalid"),
    "longer-life": (tampered_payload(_longer_life), "signature is invalid"),
    "other-subject": (tampered_payload(_admin), "signature is invalid"),
    "garbage": (lambda t: "not-a-jwt", "malformed"),
    "empty-segments": (lambda t: "..", "malformed"),
}


@pytest.mark.parametrize("name", FORGERIES)
def test_forged_token_is_rejected(target: Target, name: str) -> None:
    forge, reason = FORGERIES[name]
    assert_invalid(target, forge(target), reason)


# -- tokens signed with the server's own key but with bad claims ---------------------------


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": "hatchway",
        "sub": "alice",
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": f"forged-{time.monotonic_ns()}",
        "access": [{"type": "repository", "name": "alice/app", "actions": ["pull"]}],
    }
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def signed(target: Target, payload: dict[str, Any]) -> str:
    return jwt.encode(
        payload, target.key, algorithm="ES256", headers={"typ": "JWT", "kid": target.kid}
    )


def test_token_minted_with_the_server_key_works(target: Target) -> None:
    """The control for the claim tests below: this minting is what the server does."""
    r = bearer(target, "GET", TAGS, signed(target, claims()))
    assert r.status_code == 200, r.text


def _now() -> int:
    return int(time.time())


BAD_CLAIMS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    # Beyond the 30 s leeway.
    "expired": (lambda: claims(exp=_now() - 120, nbf=_now() - 420, iat=_now() - 420), "expired"),
    "not-yet-valid": (lambda: claims(nbf=_now() + 120), "not valid yet"),
    "wrong-audience": (lambda: claims(aud="other-registry"), "another audience"),
    "audience-list-without-us": (lambda: claims(aud=["other-registry"]), "another audience"),
    "wrong-issuer": (lambda: claims(iss="evil"), "untrusted issuer"),
    "no-exp": (lambda: claims(exp=None), "lacks the exp claim"),
    "no-aud": (lambda: claims(aud=None), "lacks the aud claim"),
    "no-iss": (lambda: claims(iss=None), "lacks the iss claim"),
    "no-jti": (lambda: claims(jti=None), "lacks the jti claim"),
    "no-nbf": (lambda: claims(nbf=None), "lacks the nbf claim"),
    "malformed-access": (
        lambda: claims(access={"repository": "alice/app"}),
        "access claim is malformed",
    ),
    "unknown-token-id": (lambda: claims(token_id="999999"), "revoked"),
}


@pytest.mark.parametrize("name", BAD_CLAIMS)
def test_server_signed_token_with_bad_claims_is_rejected(target: Target, name: str) -> None:
    make, reason = BAD_CLAIMS[name]
    assert_invalid(target, signed(target, make()), reason)


# -- valid tokens used beyond what they grant ---------------------------------------------


def test_token_for_one_repository_on_another(target: Target) -> None:
    for path, scope in (
        ("/v2/bob/app/tags/list", "repository:bob/app:pull"),
        (f"/v2/bob/app/manifests/{target.digest}", "repository:bob/app:pull"),
        (f"/v2/alice/app2/blobs/{target.config_digest}", "repository:alice/app2:pull"),
        (f"/v2/alice/app/sub/blobs/{target.config_digest}", "repository:alice/app/sub:pull"),
    ):
        r = bearer(target, "GET", path, target.token)
        assert_challenge(target, r, scope, "insufficient_scope")


def test_pull_token_cannot_push_or_delete(target: Target) -> None:
    push = "repository:alice/app:pull,push"
    r = bearer(target, "POST", "/v2/alice/app/blobs/uploads/", target.token)
    assert_challenge(target, r, push, "insufficient_scope")
    r = bearer(
        target,
        "PUT",
        "/v2/alice/app/manifests/2.0",
        target.token,
        content=b"{}",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert_challenge(target, r, push, "insufficient_scope")
    r = bearer(target, "DELETE", f"/v2/alice/app/manifests/{target.digest}", target.token)
    assert_challenge(target, r, "repository:alice/app:delete", "insufficient_scope")
    r = bearer(target, "GET", "/v2/_catalog", target.token)
    assert_challenge(target, r, "registry:catalog:*", "insufficient_scope")
    # Nothing changed.
    r = bearer(target, "GET", TAGS, target.token)
    assert r.json()["tags"] == ["1.0"]


def test_anonymous_token_grants_nothing(target: Target) -> None:
    anonymous = get_token(target.server, [PULL_SCOPE])
    r = bearer(target, "GET", TAGS, anonymous)
    assert_challenge(target, r, PULL_SCOPE, "insufficient_scope")
    # ... but it is a token: /v2/ (no scope needed) accepts it.
    assert bearer(target, "GET", "/v2/", anonymous).status_code == 200


def test_access_names_are_not_globs(target: Target) -> None:
    for name in ("alice/*", "alice/ap?", "*"):
        token = signed(
            target,
            claims(access=[{"type": "repository", "name": name, "actions": ["pull", "*"]}]),
        )
        r = bearer(target, "GET", TAGS, token)
        assert_challenge(target, r, PULL_SCOPE, "insufficient_scope")


def test_other_resource_types_do_not_stand_for_repositories(target: Target) -> None:
    for entry in (
        {"type": "registry", "name": "catalog", "actions": ["*"]},
        {"type": "repository(plugin)", "name": "alice/app", "actions": ["pull"]},
        {"type": "registry", "name": "alice/app", "actions": ["pull"]},
    ):
        r = bearer(target, "GET", TAGS, signed(target, claims(access=[entry])))
        assert_challenge(target, r, PULL_SCOPE, "insufficient_scope")


# -- the challenge names exactly what a request needs --------------------------------------


def challenge_cases(target: Target) -> list[tuple[str, str, str | None]]:
    blob = f"/v2/alice/app/blobs/{target.config_digest}"
    manifest = f"/v2/alice/app/manifests/{target.digest}"
    pull, push = "repository:alice/app:pull", "repository:alice/app:pull,push"
    return [
        ("GET", "/v2/", None),
        ("GET", "/v2", None),
        ("HEAD", "/v2/", None),
        ("GET", blob, pull),
        ("HEAD", blob, pull),
        ("DELETE", blob, "repository:alice/app:delete"),
        ("GET", manifest, pull),
        ("HEAD", "/v2/alice/app/manifests/1.0", pull),
        ("PUT", "/v2/alice/app/manifests/2.0", push),
        ("DELETE", manifest, "repository:alice/app:delete"),
        ("POST", "/v2/alice/app/blobs/uploads/", push),
        ("PATCH", "/v2/alice/app/blobs/uploads/0b6e3f2a-1111-4222-8333-944455556666", push),
        ("PUT", "/v2/alice/app/blobs/uploads/0b6e3f2a-1111-4222-8333-944455556666", push),
        ("GET", "/v2/alice/app/tags/list", pull),
        ("GET", f"/v2/alice/app/referrers/{target.digest}", pull),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("GET", "/v2/team/tools/ci/tags/list", "repository:team/tools/ci:pull"),
    ]


def test_challenge_names_the_needed_scope(target: Target) -> None:
    for method, path, scope in challenge_cases(target):
        r = bearer(target, method, path, None)
        found = assert_challenge(target, r, scope, None)
        assert set(found.params) == {"realm", "service"} | ({"scope"} if scope else set())


def test_basic_credentials_on_the_registry_get_the_bearer_challenge(target: Target) -> None:
    r = httpx.get(target.server.url + TAGS, auth=("alice", PASSWORD))
    assert_challenge(target, r, PULL_SCOPE, None)
    r = httpx.get(target.server.url + "/v2/", auth=(ADMIN, ADMIN_PASSWORD))
    assert_challenge(target, r, None, None)
