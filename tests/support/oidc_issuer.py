"""A local OpenID issuer for workload-identity tests: discovery and JWKS over loopback http,
keys made in the test, and ID tokens shaped like GitHub Actions' and Kubernetes'.

    with LocalIssuer.start() as issuer:
        token = issuer.github(repository="acme/app", audience="hatchway")

``rotate()`` adds a key that signs from then on (the old one stays published, as issuers
do during a rotation); ``hits`` counts requests per path, to see what the server fetched.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

DISCOVERY = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks"


@dataclass
class SigningKey:
    kid: str
    key: PrivateKey
    alg: str

    def public_jwk(self) -> dict[str, Any]:
        if isinstance(self.key, rsa.RSAPrivateKey):
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        else:
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}


def new_key(alg: str = "RS256", kid: str | None = None) -> SigningKey:
    key: PrivateKey
    if alg.startswith(("RS", "PS")):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(kid or uuid.uuid4().hex[:16], key, alg)


@dataclass
class LocalIssuer:
    url: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    # Discovery may name another issuer (an attack test) or another JWKS URL.
    discovery_issuer: str | None = None

    @property
    def signing(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def rotate(self, alg: str = "RS256") -> SigningKey:
        key = new_key(alg)
        self.keys.append(key)
        return key

    def mint(
        self,
        claims: dict[str, Any],
        *,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
        lifetime: int = 300,
    ) -> str:
        """A signed JWT: ``iss``/``iat``/``nbf``/``exp``/``jti`` filled in unless given."""
        signer = key or self.signing
        now = int(time.time())
        payload = {
            "iss": self.url,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"kid": signer.kid, **(headers or {})}
        return jwt.encode(payload, signer.key, algorithm=signer.alg, headers=header)

    def github(
        self,
        *,
        repository: str = "acme/app",
        ref: str = "refs/heads/main",
        audience: str | list[str] = "hatchway",
        **extra: Any,
    ) -> str:
        """An ID token shaped like GitHub Actions' (token.actions.githubusercontent.com)."""
        owner = repository.split("/", 1)[0]
        claims = {
            "sub": f"repo:{repository}:ref:{ref}",
            "aud": audience,
            "ref": ref,
            "ref_type": "branch",
            "repository": repository,
            "repository_owner": owner,
            "repository_id": "123456",
            "repository_visibility": "private",
            "workflow": "release",
            "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
            "actor": "octocat",
            "event_name": "push",
            "run_id": "42",
            "run_attempt": "1",
            "runner_environment": "github-hosted",
        }
        return self.mint({**claims, **extra.pop("claims", {})}, **extra)

    def kubernetes(
        self,
        *,
        namespace: str = "ci",
        serviceaccount: str = "builder",
        audience: str | list[str] = "hatchway",
        **extra: Any,
    ) -> str:
        """A projected service account token, shaped as kube-apiserver issues them."""
        claims = {
            "sub": f"system:serviceaccount:{namespace}:{serviceaccount}",
            "aud": audience if isinstance(audience, list) else [audience],
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": serviceaccount, "uid": str(uuid.uuid4())},
                "pod": {"name": f"{serviceaccount}-7d9f", "uid": str(uuid.uuid4())},
            },
        }
        return self.mint({**claims, **extra.pop("claims", {})}, **extra)


def _handler(issuer: LocalIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.hits[self.path] += 1
            if self.path == DISCOVERY:
                document: dict[str, Any] = {
                    "issuer": issuer.discovery_issuer or issuer.url,
                    "jwks_uri": issuer.url + JWKS_PATH,
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                }
            elif self.path == JWKS_PATH:
                document = issuer.jwks()
            else:
                self.send_error(404)
                return
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def local_issuer(alg: str = "RS256") -> Iterator[LocalIssuer]:
    """An issuer on 127.0.0.1 (a free port) with one key, until the block ends."""
    issuer = LocalIssuer(keys=[new_key(alg)])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
