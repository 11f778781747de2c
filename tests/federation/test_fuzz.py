"""Ill-formed ID tokens against a real federated ``hatchway serve``: JWTs signed with the
trusted issuer's own key but carrying claims of every wrong type and value (so they get
past the signature), and junk in JWT shape. Every answer is 200, 400 or 401 (429 for
what is a throttled password after all) in the endpoint's own error format, and the
server logs no traceback."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st

from tests.federation.test_e2e import EXCHANGE, ID_TOKEN, federated_config
from tests.support.authkit import ADMIN_PASSWORD, SERVICE, hatchway_cli
from tests.support.fuzz import LIVE, NASTY, TEXT
from tests.support.oidc_issuer import LocalIssuer, local_issuer
from tests.support.server import Server, start_server


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as running:
        yield running


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("federation-fuzz"),
        config=federated_config(issuer),
        env={"HATCHWAY_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        hatchway_cli(server.data, "user", "add-robot", "ci-acme")
        yield server
    finally:
        assert "Traceback" not in server.log()
        server.stop()


NOW = int(time.time())
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    TEXT,
    NASTY,
    st.lists(st.one_of(TEXT, st.integers()), max_size=3),
    st.dictionaries(TEXT, TEXT, max_size=3),
)
TIMES = st.one_of(ODD, st.integers(min_value=NOW - 400, max_value=NOW + 400))


def claims(issuer_url: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "iss": st.one_of(st.just(issuer_url), ODD),
            "sub": st.one_of(st.just("repo:acme/app:ref:refs/heads/main"), ODD),
            "aud": st.one_of(st.just("hatchway"), st.just(["x", "hatchway"]), ODD),
            "exp": TIMES,
            "nbf": TIMES,
            "iat": TIMES,
            "repository": st.one_of(st.just("acme/app"), ODD),
            "ref": st.one_of(st.just("refs/heads/main"), ODD),
            "kubernetes.io": st.one_of(st.just({"namespace": "ci"}), ODD),
        },
    )


def headers(kid: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {}, optional={"kid": st.one_of(st.just(kid), ODD), "typ": ODD, "crit": ODD}
    )


def check(r: httpx.Response, *, oauth: bool) -> None:
    # 429: a token without a configured iss is a password, and guessed passwords throttle.
    allowed = (200, 400, 401) if oauth else (200, 400, 401, 429)
    assert r.status_code in allowed, (r.status_code, r.text)
    body = r.json()
    if r.status_code == 200:
        assert body["token"]
    elif oauth:
        assert isinstance(body["error"], str)
    else:
        assert body["errors"][0]["code"] in ("UNAUTHORIZED", "UNSUPPORTED", "TOOMANYREQUESTS")


def send(server: Server, token: str) -> None:
    form = {
        "grant_type": EXCHANGE,
        "subject_token": token,
        "subject_token_type": ID_TOKEN,
        "scope": "repository:acme/app:pull",
    }
    check(server.client.post("/auth/token", data=form), oauth=True)
    basic = base64.b64encode(f"ci:{token}".encode()).decode()
    r = server.client.get(
        "/auth/token",
        params={"service": SERVICE, "scope": "repository:acme/app:pull"},
        headers={"Authorization": f"Basic {basic}"},
    )
    check(r, oauth=False)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(issuer: LocalIssuer, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """RS256 by hand: PyJWT's encode would refuse some of these claims before signing."""
    key = issuer.signing.key
    assert isinstance(key, rsa.RSAPrivateKey)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def test_signed_tokens_with_odd_claims(registry: Server, issuer: LocalIssuer) -> None:
    @LIVE
    @given(claims(issuer.url), headers(issuer.signing.kid))
    def run(payload: dict[str, Any], header: dict[str, Any]) -> None:
        send(registry, signed(issuer, {"alg": "RS256", **header}, payload))

    run()


def test_jwt_shaped_junk(registry: Server, issuer: LocalIssuer) -> None:
    def part(value: Any) -> str:
        return b64(value if isinstance(value, bytes) else json.dumps(value).encode())

    segment = st.one_of(
        st.binary(max_size=60).map(part),
        ODD.map(part),
        st.just(part({"alg": "RS256", "kid": issuer.signing.kid})),
        st.just(part({"iss": issuer.url, "aud": "hatchway"})),
        TEXT,
    )

    @LIVE
    @given(segment, segment, segment)
    def run(head: str, payload: str, signature: str) -> None:
        send(registry, f"eyJ{head}.{payload}.{signature}")
        send(registry, f"{head}.{payload}.{signature}")

    run()
