"""A minimal OpenID issuer on 127.0.0.1 for the federated-grant bench: discovery and a JWKS
over http (hatchway trusts it with ``jwksinsecure: true``), one RSA key, ID tokens shaped
like GitHub Actions'."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "bench-key"


class LocalIssuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    doc: dict[str, Any] = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    doc = issuer.jwks
                else:
                    self.send_error(404)
                    return
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def github_token(self, repository: str, audience: str, lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": f"repo:{repository}:ref:refs/heads/main",
            "aud": audience,
            "repository": repository,
            "ref": "refs/heads/main",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


# wrk script: each request sends the next of many Basic credentials (one distinct ID token
# each), every thread from its own part of the list, so no token string repeats.
DISTINCT_LUA = """
local tokens = {}
for line in io.lines("%(path)s") do tokens[#tokens + 1] = line end
local next_thread = 0
function setup(thread)
  thread:set("offset", next_thread)
  next_thread = next_thread + 1
end
local n = 0
function init(args)
  n = math.floor(offset * #tokens / %(threads)d)
end
function request()
  n = n + 1
  local header = {["Authorization"] = tokens[((n - 1) %% #tokens) + 1]}
  return wrk.format("GET", nil, header)
end
"""
